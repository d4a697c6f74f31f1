// The MoNE Vision Transformer (method page, section 1), or Mobile V-MoE
// (section 5) when the config's arch says so, on the CPU: forward, backward,
// and the routing decision of the last pass.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/ops.h"
#include "model/parameters.h"
#include "model/routing_plan.h"
#include "model/step.h"
#include "model/step_ops.h"
#include "model/tensor.h"

namespace mone {

// The random router's counter-based stream (random.h); no other draw uses it.
constexpr uint64_t kRandomRouterStream = 0x72616e64726f7574;  // "randrout"
// The key of every evaluation pass (`mone eval`, `mone route`, the
// trainer's evaluations): an image is routed alike in each of them.
constexpr uint64_t kEvaluationRoutingKey = 0;

// The CPU model's routing of its last pass.
struct Routing {
  RoutingPlan plan;
  std::vector<int32_t> expert_of_token;     // [B*N], 0-based, original order
  std::vector<int32_t> source_of_row;       // [B*N], row -> original row b*N + n
  std::vector<ExpertGroup> groups;          // row ranges of the stored layout
  // V-MoE instead: each image's top_k experts, best first [B*k]; the token
  // fields above stay empty.
  std::vector<int32_t> expert_of_slot;
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
  // V-MoE: the super-class of each class and the weight of the router's
  // super-class loss in forward_backward (method page, section 5). Empty:
  // no super-class loss.
  void set_superclasses(std::vector<int32_t> superclass_of_class, double router_loss_weight) {
    superclass_of_class_ = std::move(superclass_of_class);
    router_loss_weight_ = static_cast<T>(router_loss_weight);
  }

  // images: [B, H, W, C] float NHWC, routed as `plan` says (plan_routing
  // for this model's config). Returns logits [B, classes] (owned by the
  // workspace, valid until the next call).
  const T* forward(const T* images, int64_t batch, const RoutingPlan& plan);
  // Forward and backward; parameter gradients accumulate into params().grads()
  // (the caller zeroes them). With a chunk size set (set_chunk_images) a
  // larger MoNE batch runs in chunks of images, their gradients added into
  // params().grads() and each one's loss its share of the whole batch's
  // mean. Returns the mean cross-entropy over the batch
  // (label-smoothed when set), plus for V-MoE the weighted super-class loss
  // when set. With `distillation` the pass learns from its teacher logits
  // instead: label_weight times that cross-entropy plus kl_weight times the
  // distillation loss (step_ops.h, DistillationLoss).
  T forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                     DistillationLoss<T>* distillation = nullptr);

  // forward_backward over at most this many images at a time (0, the
  // default: the whole batch at once). The chunks run one per thread, as
  // many at once as there are threads, each with its ops on its own thread
  // and into its own gradient buffer; the buffers are then added to
  // params().grads() in chunk order. The same batch gives the same loss and
  // gradients up to float rounding (each image's forward is its own), and the
  // bits depend on the chunk size, not on the thread count. A chunk's
  // activations stay in the caches from one op to the next (tiny: a
  // workspace of 27 MB for 16 images against 219 MB for 128), and no thread
  // waits for another inside a chunk: tiny's step 6-21% faster on one
  // thread, 26-32% on two (docs/performance.md, "Eighth pass"). Memory: a
  // workspace per thread and a gradient buffer per chunk. V-MoE passes are
  // not chunked.
  void set_chunk_images(int64_t images) { chunk_images_ = images; }
  int64_t chunk_images() const { return chunk_images_; }

  // During forward_backward, the hook hears of each gradient range as it
  // becomes final (model/step.h, GradientReady); in chunks, of the whole
  // buffer once, when all chunks are added.
  using GradientReady = mone::GradientReady;
  void set_gradient_ready(GradientReady callback) { gradient_ready_ = std::move(callback); }

  // The random router (config().router == Router::random) orders each
  // image's tokens by uniforms drawn from (key, samples[b] * N + n): set
  // before every pass, samples[b] being image b's index in its split.
  // A no-op for the learned router, so callers may set it before every pass.
  void set_random_routing(uint64_t key, const std::vector<int64_t>& samples) {
    if (config_.router != Router::random) return;
    random_routing_key_ = key;
    random_routing_samples_ = samples;
  }

  // Of the last pass. After a pass in chunks: the whole batch's, the
  // stored layout being the chunks' layouts one after the other
  // (source_of_row and groups count rows from the batch's start).
  const Routing& routing() const { return routing_; }
  const T* logits() const;
  // Router softmax of the last pass: MoNE [B*N, E] in the original token
  // order, V-MoE [B, E] (owned by the workspace, valid until the next call).
  const T* router_probs() const;
  const Workspace& workspace() const;  // of a whole batch's pass

 private:
  struct Activations;
  struct VmoeActivations;
  struct Lane;
  // Resets the lane's workspace and runs the forward pass (planning the
  // backward's buffers too when it will follow) of images [first, first +
  // batch) of the caller's batch (first: the random router's samples).
  void forward_pass(Lane& lane, Routing& routing, const T* images, int64_t first, int64_t batch,
                    const RoutingPlan& plan, bool with_backward);
  // forward_pass and the backward of those images into `gradients` (of
  // params()'s layout), the loss the mean over loss_batch images; returns
  // their share of it.
  T pass_backward(Lane& lane, Routing& routing, const T* images, const int32_t* labels, int64_t first, int64_t batch,
                  int64_t loss_batch, const RoutingPlan& plan, DistillationLoss<T>* distillation,
                  const GradientReady& ready, T* gradients);
  T chunked_forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                             DistillationLoss<T>* distillation);

  ModelConfig config_;
  ParameterSet<T> params_;
  TokenOrder order_ = TokenOrder::expert_sorted;
  T label_smoothing_ = T(0);
  std::vector<int32_t> superclass_of_class_;
  T router_loss_weight_ = T(0);
  uint64_t random_routing_key_ = 0;
  std::vector<int64_t> random_routing_samples_;
  Routing routing_;
  std::unique_ptr<Lane> lane_;                  // a whole batch's pass
  std::unique_ptr<VmoeActivations> vmoe_acts_;  // in lane_'s workspace
  GradientReady gradient_ready_;
  int64_t chunk_images_ = 0;
  std::vector<std::unique_ptr<Lane>> chunk_lanes_;  // one per thread
  std::vector<T> chunk_gradients_;                  // [chunks, params().numel()]
  // The whole batch's logits and router probabilities after a pass in chunks
  // (whole_batch_ then true).
  bool whole_batch_ = false;
  std::vector<T> batch_logits_, batch_router_probs_;
};

// Threads for BLAS and the element-wise loops. The default is the cores this
// process may run on divided by the ranks sharing the machine.
int default_thread_count();
void set_thread_count(int threads);
int thread_count();

// Restarts this program (exec, same pid and arguments) with
// OMP_WAIT_POLICY=passive unless the user set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT; returns when there is nothing to do or the exec failed.
// libgomp reads its wait policy once, when it is loaded, before main (a
// setenv in main, or even in a .preinit_array entry, comes too late), so a
// program that wants another default must start again. Call it first in
// main, before any thread or MPI starts.
//
// Why passive: libgomp's default spins for a while at every barrier, and when
// another process holds one of the cores (a shared node) the spinning thread
// takes the time slices that the thread it waits for needs. Measured on 2
// cores (tiny, batch 128, 2 threads, one busy process at nice 0 beside it;
// docs/performance.md): spinning, a step took 2.7-3.5x its time on the quiet
// machine; sleeping, 1.6x, at about 5% more time when the machine is quiet.
void restart_with_passive_openmp_wait(char** argv);

}  // namespace mone
