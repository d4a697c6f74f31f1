// The CPU Model: the model step of its arch (model/step.h, model/vmoe_step.h)
// over the reference ops, with its activations in the workspace.
#include "model/model.h"

#include <algorithm>
#include <stdexcept>

#include "model/random.h"

#include "model/step.h"
#include "model/step_ops.h"

namespace mone {

template <class T>
struct Model<T>::Activations : StepActivations<CpuStepOps<T>> {};
template <class T>
struct Model<T>::VmoeActivations : mone::VmoeActivations<CpuStepOps<T>> {};

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
      acts_(std::make_unique<Activations>()),
      vmoe_acts_(std::make_unique<VmoeActivations>()) {
  params_.initialise(seed, InitScheme::small);
}

template <class T>
Model<T>::~Model() = default;
template <class T>
Model<T>::Model(Model&&) noexcept = default;

template <class T>
void Model<T>::forward_pass(const T* images, int64_t first, int64_t batch, const RoutingPlan& plan,
                            bool with_backward) {
  workspace_.reset();
  whole_batch_ = false;
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  WorkspaceArena arena{workspace_};
  routing_.plan = plan;
  if (config_.is_vmoe()) {
    plan_vmoe_step(arena, ops, config_, batch, with_backward, *vmoe_acts_);
    vmoe_step_forward(ops, config_, images, *vmoe_acts_);
    const int64_t slots = batch * config_.top_k;
    routing_.expert_of_slot.assign(vmoe_acts_->expert_of_slot, vmoe_acts_->expert_of_slot + slots);
    return;
  }
  plan_step(arena, ops, config_, batch, with_backward, *acts_);
  if (config_.router == Router::random) {
    if (static_cast<int64_t>(random_routing_samples_.size()) < first + batch)
      throw std::logic_error("Model: the random router needs set_random_routing before each pass");
    // One uniform per token, the same for every expert: EPR then hands out
    // the tokens in that order, a random permutation of the image's tokens.
    const int64_t N = config_.tokens(), E = config_.experts;
    random_routing_scores_.resize(static_cast<size_t>(batch * N * E));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t n = 0; n < N; ++n) {
        const auto index = static_cast<uint64_t>(random_routing_samples_[first + b] * N + n);
        const T score = static_cast<T>(random_uniform(random_routing_key_, kRandomRouterStream, index));
        std::fill_n(random_routing_scores_.data() + (b * N + n) * E, E, score);
      }
    ops.set_routing_scores(random_routing_scores_.data());
  }
  step_forward(ops, config_, images, plan, *acts_);
  const int64_t rows = batch * config_.tokens();
  routing_.expert_of_token.assign(acts_->expert_of_token, acts_->expert_of_token + rows);
  routing_.source_of_row.assign(acts_->source_of_row, acts_->source_of_row + rows);
  routing_.groups = acts_->groups;
}

template <class T>
const T* Model<T>::router_probs() const {
  if (whole_batch_) return batch_router_probs_.data();
  return config_.is_vmoe() ? vmoe_acts_->router_probs : acts_->router_probs;
}

template <class T>
const T* Model<T>::logits() const {
  if (whole_batch_) return batch_logits_.data();
  return config_.is_vmoe() ? vmoe_acts_->logits : acts_->logits;
}

template <class T>
const T* Model<T>::forward(const T* images, int64_t batch, const RoutingPlan& plan) {
  forward_pass(images, 0, batch, plan, false);
  workspace_.settle();
  return logits();
}

template <class T>
T Model<T>::forward_backward(const T* images, const int32_t* labels, int64_t batch, const RoutingPlan& plan,
                             DistillationLoss<T>* distillation) {
  if (config_.is_vmoe() || chunk_images_ <= 0 || batch <= chunk_images_)
    return pass_backward(images, labels, 0, batch, batch, plan, distillation, gradient_ready_);
  const int64_t image_values = config_.image_height * config_.image_width * config_.channels;
  const int64_t C = config_.classes, NE = config_.tokens() * config_.experts;
  batch_logits_.resize(static_cast<size_t>(batch * C));
  batch_router_probs_.resize(static_cast<size_t>(batch * NE));
  Routing whole;
  whole.plan = plan;
  T loss = 0;
  for (int64_t first = 0; first < batch; first += chunk_images_) {
    const int64_t images_here = std::min(chunk_images_, batch - first);
    const bool last = first + images_here == batch;
    DistillationLoss<T> slice;  // the teacher's logits of these images
    if (distillation) {
      slice = *distillation;
      slice.teacher_logits += first * C;
    }
    loss += pass_backward(images + first * image_values, labels + first, first, images_here, batch, plan,
                          distillation ? &slice : nullptr, last ? gradient_ready_ : GradientReady{});
    std::copy_n(acts_->logits, images_here * C, batch_logits_.data() + first * C);
    std::copy_n(acts_->router_probs, images_here * NE, batch_router_probs_.data() + first * NE);
    const int64_t row0 = first * config_.tokens();
    whole.expert_of_token.insert(whole.expert_of_token.end(), routing_.expert_of_token.begin(),
                                 routing_.expert_of_token.end());
    for (const int32_t source : routing_.source_of_row)
      whole.source_of_row.push_back(static_cast<int32_t>(source + row0));
    for (ExpertGroup g : routing_.groups) {
      g.row_begin += row0;
      whole.groups.push_back(g);
    }
  }
  routing_ = std::move(whole);
  whole_batch_ = true;
  return loss;
}

template <class T>
T Model<T>::pass_backward(const T* images, const int32_t* labels, int64_t first, int64_t batch, int64_t loss_batch,
                          const RoutingPlan& plan, DistillationLoss<T>* distillation, const GradientReady& ready) {
  forward_pass(images, first, batch, plan, true);
  CpuStepOps<T> ops(params_, config_, order_, label_smoothing_);
  // This pass's share of the mean over loss_batch images.
  const T share = T(batch) / T(loss_batch);
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
    const T loss = class_loss(acts_->logits, acts_->class_probs);
    if (loss_batch != batch) ops.set_loss_batch(loss_batch);
    step_backward(ops, config_, labels, *acts_, ready);
    workspace_.settle();
    return loss_batch == batch ? loss : loss * share;
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
  workspace_.settle();
  return loss;
}

template class Model<float>;
template class Model<double>;

}  // namespace mone
