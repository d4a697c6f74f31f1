// The MoNE Vision Transformer (method page, section 1) on the CPU: forward,
// backward, and the routing decision of the last pass.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/capacity.h"
#include "model/config.h"
#include "model/flops.h"
#include "model/ops.h"
#include "model/parameters.h"
#include "model/tensor.h"

namespace mone {

// How tokens are stored between routing and pooling. expert_sorted is the
// fast layout (method page, section 2); original keeps [B, N] order and runs
// each nested projection per run of same-expert tokens. Both give the same
// result; the second exists to prove it.
enum class TokenOrder { expert_sorted, original };

struct Routing {
  double requested_capacity = 1.0;
  double realised_capacity = 1.0;
  std::vector<double> capacity;             // c_1..c_E
  std::vector<int64_t> tokens_per_expert;   // k_1..k_E per image
  std::vector<int32_t> expert_of_token;     // [B*N], 0-based, original order
  std::vector<int32_t> source_of_row;       // [B*N], row -> original row b*N + n
  std::vector<ExpertGroup> groups;          // row ranges of the stored layout
};

template <class T>
class Model {
 public:
  Model(const ModelConfig& config, uint64_t seed);
  ~Model();
  Model(Model&&) noexcept;

  const ModelConfig& config() const { return config_; }
  ParameterSet<T>& params() { return params_; }
  const ParameterSet<T>& params() const { return params_; }
  void set_token_order(TokenOrder order) { order_ = order; }
  // Label smoothing e of the training loss (cross_entropy_forward); 0 by default.
  void set_label_smoothing(double epsilon) { label_smoothing_ = static_cast<T>(epsilon); }

  // images: [B, H, W, C] float NHWC. Returns logits [B, classes] (owned by the
  // workspace, valid until the next call).
  const T* forward(const T* images, int64_t batch, double effective_capacity);
  // Forward and backward; parameter gradients accumulate into params().grads()
  // (the caller zeroes them). Returns the mean cross-entropy over the batch
  // (label-smoothed when set).
  T forward_backward(const T* images, const int32_t* labels, int64_t batch, double effective_capacity);

  // Backward hook for overlapping the gradient allreduce: during
  // forward_backward, called with each element range [begin, end) of the
  // gradient buffer that backward will not write again in this pass. The
  // parameters are stored in forward order, so the ranges arrive from the end
  // of the buffer toward its start (head and final norm, then each block from
  // the last, then the embeddings and the router) and together cover it once.
  // Empty function: no calls.
  using GradientReady = std::function<void(int64_t begin, int64_t end)>;
  void set_gradient_ready(GradientReady callback) { gradient_ready_ = std::move(callback); }

  const Routing& routing() const { return routing_; }  // of the last pass
  const T* logits() const { return logits_; }
  // Router softmax [B*N, E] in the original token order, of the last pass
  // (owned by the workspace, valid until the next call).
  const T* router_probs() const;
  const Workspace& workspace() const { return workspace_; }

 private:
  struct BlockActivations;
  struct Activations;
  void route(const T* probs, int64_t batch, double effective_capacity);
  void forward_pass(const T* images, int64_t batch, double effective_capacity, Activations& acts);
  void backward_pass(const int32_t* labels, int64_t batch, Activations& acts);
  // Reports [begin, final_from) to the hook and moves final_from to begin.
  void gradients_final_from(int64_t begin, int64_t& final_from);

  ModelConfig config_;
  ParameterSet<T> params_;
  TokenOrder order_ = TokenOrder::expert_sorted;
  T label_smoothing_ = T(0);
  Routing routing_;
  Workspace workspace_;
  std::unique_ptr<Activations> acts_;  // views into workspace_, rebuilt each pass
  const T* logits_ = nullptr;
  GradientReady gradient_ready_;
};

// Threads for BLAS and the element-wise loops. The default is the cores this
// process may run on divided by the ranks sharing the machine.
int default_thread_count();
void set_thread_count(int threads);
int thread_count();

}  // namespace mone
