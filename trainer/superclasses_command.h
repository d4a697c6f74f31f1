// `mone superclasses`: the super-classes of a trained model (trainer/superclasses.h)
// from its confusion matrix on a split, written for `mone train --superclasses`.
#pragma once

#include "trainer/train_options.h"

namespace mone {

// Prints the confusion matrix and the groups, writes options.out. Returns
// kExitSuccess; throws UsageError, CheckpointError, DataError.
int run_superclasses(const SuperclassOptions& options);

}  // namespace mone
