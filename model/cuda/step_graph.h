// The training step's forward and backward as CUDA graphs, one per routing
// (StepKey): with the tokens per expert and the batch fixed, a pass launches
// the same kernels and GEMMs with the same shapes and pointers every time, so
// it is captured once and replayed with one launch, which removes the
// per-kernel launch cost (hundreds of launches per step). In the
// random-capacity mode each distinct k_1..k_E drawn gets its own graph.
//
// The captured work must only enqueue on the context's stream (no
// synchronisation, no host reads of device results), which
// DeviceModel::forward_backward keeps. Clipping and DeviceAdamW::step stay
// outside the graph: clipping reads the norm back on the host, and AdamW's
// bias corrections change every step.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <vector>

#include "model/cuda/context.h"

namespace mone::cuda {

// What fixes every shape and pointer of a step: the routing plan's tokens
// per expert (the groups; RoutingPlan::same_routing) and the batch size.
struct StepKey {
  std::vector<int64_t> tokens_per_expert;
  int64_t batch = 0;
  bool operator<(const StepKey& other) const {
    return std::tie(tokens_per_expert, batch) < std::tie(other.tokens_per_expert, other.batch);
  }
};

class StepGraphs {
 public:
  explicit StepGraphs(const DeviceContext& context) : context_(context) {}
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Launches the graph of `key`; captures `enqueue` on
  // the context's stream first if there is none yet. Run `enqueue` once
  // uncaptured before, so that one-time host work (cuBLASLt plans) is done.
  void launch(const StepKey& key, const std::function<void()>& enqueue);
  bool contains(const StepKey& key) const { return graphs_.count(key) != 0; }
  size_t graphs() const { return graphs_.size(); }

 private:
  const DeviceContext& context_;
  std::map<StepKey, cudaGraphExec_t> graphs_;
};

}  // namespace mone::cuda
