// A model as evaluation sees it (trainer/evaluate.h): the logits of one
// batch at one effective capacity, on the host, whatever computes them. The
// CPU model is OwnedCpuModel; the device model is OwnedCudaModel
// (trainer/cuda_training_backend.cpp).
#pragma once

#include "data/loader.h"
#include "model/config.h"
#include "model/model.h"

namespace mone {

class ForwardModel {
 public:
  virtual ~ForwardModel() = default;
  virtual const ModelConfig& config() const = 0;
  // fp32 logits [batch.count, classes] of the batch routed as `plan` says,
  // valid until the next call.
  virtual const float* logits(const Batch& batch, const RoutingPlan& plan) = 0;
  // The memory its batches are best loaded into (LoaderOptions::allocator):
  // pinned memory for a GPU, so the upload copies from it directly.
  virtual const HostAllocator& batch_allocator() const { return aligned_host_allocator(); }
};

// The CPU Model<float>, owned: the training backend trains it, evaluation
// reads its logits.
class OwnedCpuModel : public ForwardModel {
 public:
  OwnedCpuModel(const ModelConfig& config, uint64_t seed) : model_(config, seed) {}
  Model<float>& model() { return model_; }
  const ModelConfig& config() const override { return model_.config(); }
  const float* logits(const Batch& batch, const RoutingPlan& plan) override {
    model_.set_random_routing(kEvaluationRoutingKey, batch.samples);
    return model_.forward(batch.images.data(), batch.count, plan);
  }

 private:
  Model<float> model_;
};

}  // namespace mone
