#include "model/cuda/step_graph.h"

#include "model/cuda/check.h"

namespace mone::cuda {

StepGraphs::~StepGraphs() {
  for (auto& entry : graphs_) cudaGraphExecDestroy(entry.second);
}

void StepGraphs::launch(const StepKey& key, const std::function<void()>& enqueue) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cudaGraph_t graph = nullptr;
    // Thread-local mode: other threads may keep using CUDA while we capture.
    MONE_CUDA_CHECK(cudaStreamBeginCapture(context_.stream(), cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (...) {
      cudaStreamEndCapture(context_.stream(), &graph);  // leave the stream usable
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    MONE_CUDA_CHECK(cudaStreamEndCapture(context_.stream(), &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    MONE_CUDA_CHECK(status);
    it = graphs_.emplace(key, exec).first;
  }
  MONE_CUDA_CHECK(cudaGraphLaunch(it->second, context_.stream()));
}

}  // namespace mone::cuda
