// `mone eval`: one checkpoint evaluated at a list of effective capacities.
#pragma once

#include "trainer/train_options.h"

namespace mone {

// Prints the table and writes <out>/eval/step-<N>.csv and .json. Returns
// kExitSuccess; throws UsageError, CheckpointError, DataError.
int run_evaluation(const EvalOptions& options);

}  // namespace mone
