// The CPU Model: the model step of its arch (model/step.h, model/vmoe_step.h)
// over the reference ops, with its activations in the workspace.
#include "model/model.h"

#include <algorithm>
#include <exception>
#include <stdexcept>

#include <omp.h>

#include "model/random.h"
#include "model/step.h"
#include "model/step_ops.h"

namespace mone {

template <class T>
struct Model<T>::Activations : StepActivations<CpuStepOps<T>> {};
template <class T>
struct Model<T>::VmoeActivations : mone::VmoeActivations<CpuStepOps<T>> {};
// What one MoNE pass works in: the model's own for a whole batch, one per
// thread for chunks.
template <class T>
struct Model<T>::Lane {
  Workspace workspace;
  Activations acts;                      // views into workspace, rebuilt each pass
  std::vector<T> random_routing_scores;  // [B, N, E]
};

// A Workspace is the arena plan_step lays the activations out in; the
// purpose names a buffer only in the device's out-of-memory message.
namespace {
struct WorkspaceArena {
  Workspace& workspace;
  template <class E>
  E* take(int64_t n, const char* /*purpose*/) {
    return workspace.take<E>(n);
  }
};
}  // namespace

template <class T>
Model<T>::Model(const ModelConfig& config, uint64_t seed)
    : config_(config),
      params_((config.validate(), config)),
      lane_(std::make_unique<Lane>()),
      vmoe_acts_(std::make_unique<VmoeActivations>()) {
  params_.initialise(seed, InitScheme::small);
}

template <class T>
Model<T>::~Model() = default;
template <class T>
Model<T>::Model(Model&&) noexcept = default;

template <class T>
void Model<T>::forward_pass(Lane& lane, Routing& routing, const T* images, int64_t first, int64_t batch,
                            const RoutingPlan& plan, bool with_backward) {
  lane.workspace.reset();
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  WorkspaceArena arena{lane.workspace};
  routing.plan = plan;
  if (config_.is_vmoe()) {
    plan_vmoe_step(arena, ops, config_, batch, with_backward, *vmoe_acts_);
    vmoe_step_forward(ops, config_, images, *vmoe_acts_);
    const int64_t slots = batch * config_.top_k;
    routing.expert_of_slot.assign(vmoe_acts_->expert_of_slot, vmoe_acts_->expert_of_slot + slots);
    return;
  }
  Activations& acts = lane.acts;
  plan_step(arena, ops, config_, batch, with_backward, acts);
  if (config_.router == Router::random) {
    if (static_cast<int64_t>(random_routing_samples_.size()) < first + batch)
      throw std::logic_error("Model: the random router needs set_random_routing before each pass");
    // One uniform per token, the same for every expert: EPR then hands out
    // the tokens in that order, a random permutation of the image's tokens.
    const int64_t N = config_.tokens(), E = config_.experts;
    lane.random_routing_scores.resize(static_cast<size_t>(batch * N * E));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t n = 0; n < N; ++n) {
        const auto index = static_cast<uint64_t>(random_routing_samples_[first + b] * N + n);
        const T score = static_cast<T>(random_uniform(random_routing_key_, kRandomRouterStream, index));
        std::fill_n(lane.random_routing_scores.data() + (b * N + n) * E, E, score);
      }
    ops.set_routing_scores(lane.random_routing_scores.data());
  }
  step_forward(ops, config_, images, plan, acts);
  const int64_t rows = batch * config_.tokens();
  routing.expert_of_token.assign(acts.expert_of_token, acts.expert_of_token + rows);
  routing.source_of_row.assign(acts.source_of_row, acts.source_of_row + rows);
  routing.groups = acts.groups;
}

template <class T>
const T* Model<T>::router_probs() const {
  if (whole_batch_) return batch_router_probs_.data();
  return config_.is_vmoe() ? vmoe_acts_->router_probs : lane_->acts.router_probs;
}

template <class T>
const T* Model<T>::logits() const {
  if (whole_batch_) return batch_logits_.data();
  return config_.is_vmoe() ? vmoe_acts_->logits : lane_->acts.logits;
}

template <class T>
const Workspace& Model<T>::workspace() const {
  return lane_->workspace;
}

template <class T>
const T* Model<T>::forward(const T* images, int64_t batch, const RoutingPlan& plan) {
  whole_batch_ = false;
  forward_pass(*lane_, routing_, images, 0, batch, plan, false);
  lane_->workspace.settle();
  return logits();
}

template <class T>
T Model<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                             DistillationLoss<T>* distillation) {
  whole_batch_ = false;
  if (config_.is_vmoe() || chunk_images_ <= 0 || batch <= chunk_images_)
    return pass_backward(*lane_, routing_, images, labels, 0, batch, batch, plan, distillation, gradient_ready_,
                         params_.grads());
  return chunked_forward_backward(images, labels, batch, plan, distillation);
}

// The chunks go to the threads as they come free (one thread each, its ops on
// that thread alone), each into a gradient buffer of its own; the buffers are
// then added to the gradients in chunk order, whichever thread computed them,
// so the bits are the same on any number of threads. On a machine where
// another process holds a core the free thread takes more of the chunks.
template <class T>
T Model<T>::chunked_forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                                     DistillationLoss<T>* distillation) {
  const int64_t image_values = config_.image_height * config_.image_width * config_.channels;
  const int64_t C = config_.classes, NE = config_.tokens() * config_.experts, numel = params_.numel();
  const int64_t chunks = (batch + chunk_images_ - 1) / chunk_images_;
  const int lanes = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), chunks));
  while (static_cast<int>(chunk_lanes_.size()) < lanes) chunk_lanes_.push_back(std::make_unique<Lane>());
  chunk_gradients_.resize(static_cast<size_t>(chunks * numel));
  batch_logits_.resize(static_cast<size_t>(batch * C));
  batch_router_probs_.resize(static_cast<size_t>(batch * NE));
  std::vector<Routing> chunk_routing(static_cast<size_t>(chunks));
  std::vector<T> chunk_loss(static_cast<size_t>(chunks));
  std::exception_ptr failure;
#pragma omp parallel num_threads(lanes)
  {
    Lane& lane = *chunk_lanes_[static_cast<size_t>(omp_get_thread_num())];
    omp_set_num_threads(1);  // the regions this thread's ops open have it alone, whatever the nesting settings
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      try {
        const int64_t first = c * chunk_images_, images_here = std::min(chunk_images_, batch - first);
        T* gradients = chunk_gradients_.data() + c * numel;
        std::fill_n(gradients, numel, T(0));
        DistillationLoss<T> slice;  // the teacher's logits of these images
        if (distillation) {
          slice = *distillation;
          slice.teacher_logits += first * C;
        }
        chunk_loss[c] =
            pass_backward(lane, chunk_routing[c], images + first * image_values, labels + first, first, images_here,
                          batch, plan, distillation ? &slice : nullptr, GradientReady{}, gradients);
        std::copy_n(lane.acts.logits, images_here * C, batch_logits_.data() + first * C);
        std::copy_n(lane.acts.router_probs, images_here * NE, batch_router_probs_.data() + first * NE);
      } catch (...) {
#pragma omp critical(mone_chunk_failure)
        if (!failure) failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);

  // g += chunk 0's + chunk 1's + ..., element by element, in blocks that stay in cache.
  T* grads = params_.grads();
  constexpr int64_t kBlock = 4096;
#pragma omp parallel for schedule(static) if (numel > 4 * kBlock)
  for (int64_t begin = 0; begin < numel; begin += kBlock) {
    const int64_t end = std::min(numel, begin + kBlock);
    for (int64_t c = 0; c < chunks; ++c) {
      const T* chunk = chunk_gradients_.data() + c * numel;
      for (int64_t i = begin; i < end; ++i) grads[i] += chunk[i];
    }
  }
  if (gradient_ready_) gradient_ready_(0, numel);

  Routing whole;
  whole.plan = plan;
  T loss = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    loss += chunk_loss[c];
    const Routing& part = chunk_routing[c];
    const int64_t row0 = c * chunk_images_ * config_.tokens();
    whole.expert_of_token.insert(whole.expert_of_token.end(), part.expert_of_token.begin(), part.expert_of_token.end());
    for (const int32_t source : part.source_of_row) whole.source_of_row.push_back(static_cast<int32_t>(source + row0));
    for (ExpertGroup g : part.groups) {
      g.row_begin += row0;
      whole.groups.push_back(g);
    }
  }
  routing_ = std::move(whole);
  whole_batch_ = true;
  return loss;
}

template <class T>
T Model<T>::pass_backward(Lane& lane, Routing& routing, const T* images, const int32_t* labels, int64_t first,
                          int64_t batch, int64_t loss_batch, const RoutingPlan& plan, DistillationLoss<T>* distillation,
                          const GradientReady& ready, T* gradients) {
  forward_pass(lane, routing, images, first, batch, plan, true);
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  ops.set_gradients(gradients);
  // The classification loss, or the distillation loss of a student pass.
  const auto class_loss = [&](const T* logits, T* class_probs) {
    const T cross_entropy = cross_entropy_forward(logits, labels, batch, config_.classes, class_probs, label_smoothing_);
    if (!distillation) return cross_entropy;
    DistillationLoss<T>& d = *distillation;
    d.soft.resize(static_cast<size_t>(batch * config_.classes));
    d.teacher_soft.resize(d.soft.size());
    ops.set_distillation(&d);
    return d.label_weight * cross_entropy +
           d.kl_weight * distillation_forward(logits, d.teacher_logits, batch, config_.classes, d.temperature,
                                              d.soft.data(), d.teacher_soft.data());
  };
  if (!config_.is_vmoe()) {
    const T loss = class_loss(lane.acts.logits, lane.acts.class_probs);
    if (loss_batch != batch) ops.set_loss_batch(loss_batch);
    step_backward(ops, config_, labels, lane.acts, ready);
    lane.workspace.settle();
    // This pass's share of the mean over loss_batch images.
    return loss_batch == batch ? loss : loss * T(batch) / T(loss_batch);
  }
  auto& a = *vmoe_acts_;
  T loss = class_loss(a.logits, a.class_probs);
  std::vector<int32_t> superclass;
  if (!superclass_of_class_.empty()) {
    for (int64_t b = 0; b < batch; ++b) superclass.push_back(superclass_of_class_.at(labels[b]));
    loss += router_loss_weight_ * superclass_loss_forward(a.router_probs, superclass.data(), batch, config_.experts);
  }
  vmoe_step_backward(ops, config_, labels, superclass.empty() ? nullptr : superclass.data(), router_loss_weight_, a,
                     ready);
  lane.workspace.settle();
  return loss;
}

template class Model<float>;
template class Model<double>;

}  // namespace mone
