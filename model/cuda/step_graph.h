// The training step as CUDA graphs, one per effective capacity: with e_c
// fixed, a step launches the same kernels and GEMMs with the same shapes and
// pointers every time, so it is captured once and replayed with one launch,
// which removes the per-kernel launch cost (hundreds of launches per step).
// In the random-capacity mode each e_c value drawn gets its own graph.
//
// The captured work must only enqueue on the context's stream (no
// synchronisation, no host reads of device results), which
// DeviceModel::forward_backward, clip_grad_norm and DeviceAdamW::step keep.
// DeviceAdamW::step is not capturable as such: its bias corrections change
// every step, so capture the forward and backward only.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <map>

#include "model/cuda/context.h"

namespace mone::cuda {

class StepGraphs {
 public:
  explicit StepGraphs(const DeviceContext& context) : context_(context) {}
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Launches the graph of `key` (e.g. the e_c value); captures `enqueue` on
  // the context's stream first if there is none yet. Run `enqueue` once
  // uncaptured before, so that one-time host work (cuBLASLt plans) is done.
  void launch(double key, const std::function<void()>& enqueue);
  bool contains(double key) const { return graphs_.count(key) != 0; }
  size_t graphs() const { return graphs_.size(); }

 private:
  const DeviceContext& context_;
  std::map<double, cudaGraphExec_t> graphs_;
};

}  // namespace mone::cuda
