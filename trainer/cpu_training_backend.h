// The CPU backend of `mone train` (trainer/training_backend.h): Model<float>,
// the host AdamW, and gradient buckets averaged over MPI while backward runs.
#pragma once

#include <memory>

#include "trainer/training_backend.h"

namespace mone {

std::unique_ptr<TrainingBackend> make_cpu_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                           Communicator& host);

}  // namespace mone
