// `mone route`: pictures of which nested expert EPR gives each patch of a
// split's first images, at one capacity and across a list of capacities.
#pragma once

#include "trainer/train_options.h"

namespace mone {

// Writes <out>/image-<i>.png and <out>/grid.png and prints each image's tokens
// per expert. A V-MoE checkpoint routes images, not patches: its report is
// the table of each class's images per expert over the whole split,
// <out>/experts-by-class.csv. Returns kExitSuccess; throws UsageError, CheckpointError,
// DataError, std::runtime_error (an unwritable --out).
int run_routing_pictures(const RouteOptions& options);

}  // namespace mone
