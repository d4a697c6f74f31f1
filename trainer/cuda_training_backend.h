// The CUDA backend of `mone train` and `mone eval --device cuda`
// (trainer/training_backend.h). Compiled only in builds with the CUDA
// backend (MONE_HAVE_CUDA); training_backend.cpp calls it from there alone.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainer/training_backend.h"

namespace mone {

// DeviceModel<T> (T from options.precision), DeviceAdamW, BatchUpload; the
// gradients averaged over the ranks with NCCL where it was built and every
// rank has a device of its own, else through the host communicator.
std::unique_ptr<TrainingBackend> make_cuda_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                            const World& world, Communicator& host);

std::unique_ptr<ForwardModel> make_cuda_forward_model(const std::string& precision, const ModelConfig& config,
                                                      const std::vector<float>& values, int64_t max_batch,
                                                      const World& world);

}  // namespace mone
