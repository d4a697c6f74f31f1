// `mone route`: pictures of which nested expert EPR gives each patch of a
// split's first images, at one capacity and across a list of capacities.
#pragma once

#include "trainer/train_options.h"

namespace mone {

// Writes <out>/image-<i>.png and <out>/grid.png and prints each image's tokens
// per expert. Returns kExitSuccess; throws UsageError, CheckpointError,
// DataError, std::runtime_error (an unwritable --out).
int run_routing_pictures(const RouteOptions& options);

}  // namespace mone
