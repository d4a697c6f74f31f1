// `mone eval`: one checkpoint evaluated at a list of effective capacities.
#pragma once

#include "comm/world.h"
#include "trainer/train_options.h"

namespace mone {

// Prints the table and writes <out>/eval/step-<N>.csv and .json. Returns
// kExitSuccess; throws UsageError, CheckpointError, DataError. `world` (one
// process) picks the device with --device cuda.
int run_evaluation(const EvalOptions& options, const World& world);

}  // namespace mone
