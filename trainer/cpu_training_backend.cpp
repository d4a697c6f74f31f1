#include "trainer/cpu_training_backend.h"

#include "comm/gradient_buckets.h"
#include "model/model.h"

namespace mone {

namespace {

class CpuTrainingBackend : public TrainingBackend {
 public:
  CpuTrainingBackend(const TrainOptions& options, const ModelConfig& config, Communicator& host)
      : threads_(options.threads),
        ranks_(options.world),
        accumulate_(options.accumulate),
        forward_(config, options.seed),
        model_(forward_.model()),
        optimizer_(model_.params().infos(), model_.params().numel(),
                   AdamWSettings{0.9, 0.999, 1e-8, options.weight_decay}),
        buckets_(host, model_.params().grads(), model_.params().numel(), bucket_options(options)) {
    model_.set_label_smoothing(options.label_smoothing);
    model_.set_chunk_images(options.chunk_images);
    if (config.is_vmoe()) model_.set_superclasses(options.superclass_of_class, options.router_loss_weight);
    model_.set_gradient_ready([this](int64_t begin, int64_t end) { gradients_ready(begin, end); });
    distillation_.temperature = static_cast<float>(options.distill_temperature);
    distillation_.kl_weight = static_cast<float>(options.distill_weight);
    distillation_.label_weight = static_cast<float>(options.distill_label_weight);
  }

  std::string description() const override {
    const std::string threads = "cpu, " + std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
    return ranks_ == 1 ? threads : threads + " per rank; gradients averaged over MPI in buckets during backward";
  }
  ParameterSet<float>& parameters() override { return model_.params(); }
  AdamW& optimizer() override { return optimizer_; }
  void pull_state() override {}
  void push_state() override {}

  void begin_step(const std::string& context) override {
    model_.params().zero_grads();
    buckets_.begin(context);
    loss_ = 0;
  }
  // The passes in order, gradients summed; only the last pass of the last
  // micro-step hands its gradient ranges to the buckets.
  void micro_step(const Batch& batch, const std::vector<TrainingPass>& passes, bool last) override {
    const float* images = batch.images.data();
    const int32_t* labels = batch.labels.data();
    for (size_t i = 0; i < passes.size(); ++i) {
      last_micro_step_ = last && i + 1 == passes.size();
      model_.set_random_routing(passes[i].routing_key, batch.samples);
      if (!passes[i].distilled) {
        loss_ += model_.forward_backward(images, labels, batch.count, passes[i].plan);
        if (i == 0 && passes.size() > 1) {  // the teacher of the passes that follow
          const float* logits = model_.logits();
          teacher_logits_.assign(logits, logits + batch.count * model_.config().classes);
        }
        continue;
      }
      distillation_.teacher_logits = teacher_logits_.data();
      loss_ += model_.forward_backward(images, labels, batch.count, passes[i].plan, &distillation_);
    }
  }
  double finish_gradients() override {
    buckets_.finish();
    return loss_;
  }
  double clip_gradients(double max_norm) override {
    return clip_grad_norm(model_.params().grads(), model_.params().numel(), max_norm);
  }
  void update(double lr) override { optimizer_.step(model_.params().values(), model_.params().grads(), lr); }
  ForwardModel& forward_model() override { return forward_; }

 private:
  void gradients_ready(int64_t begin, int64_t end);

  int threads_;
  int64_t ranks_;
  int64_t accumulate_;
  OwnedCpuModel forward_;
  Model<float>& model_;
  AdamW optimizer_;
  GradientBuckets buckets_;
  bool last_micro_step_ = false;  // the pass whose backward finishes the gradients
  std::vector<float> teacher_logits_;  // [B, classes] of the step's first pass
  DistillationLoss<float> distillation_;
  double loss_ = 0;
};

// Backward of the last micro-step has finished [begin, end): scale it for
// accumulation (each micro-step added the gradient of its own mean loss) and
// hand it to the buckets, which start averaging it over the ranks while
// backward goes on. Earlier micro-steps only accumulate: one synchronisation
// per optimizer step. Each element is scaled exactly once, on this thread,
// before its bucket is sent: the same operations in the same order as
// scaling the whole buffer after the loop.
void CpuTrainingBackend::gradients_ready(int64_t begin, int64_t end) {
  if (!last_micro_step_) return;
  if (accumulate_ > 1)
    scale_gradients(model_.params().grads() + begin, end - begin, 1.0f / static_cast<float>(accumulate_));
  buckets_.mark_ready(begin, end);
}

}  // namespace

std::unique_ptr<TrainingBackend> make_cpu_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                           Communicator& host) {
  return std::make_unique<CpuTrainingBackend>(options, config, host);
}

}  // namespace mone
