#include "trainer/cuda_training_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <set>
#include <stdexcept>

#include "comm/host_values.h"
#include "model/cuda/backend.h"
#include "trainer/exit_codes.h"
#ifdef MONE_HAVE_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace mone {

namespace {

// The device of this rank: local rank modulo the visible devices. Must run
// before anything creates a CUDA context. Returns "cuda device i (name) of n visible".
std::string select_device(const World& world) {
  std::string reason;
  if (!cuda::cuda_device_available(&reason))
    throw UsageError("--device cuda: " + reason + " (" + world.describe() + ")");
  int visible = 0;
  MONE_CUDA_CHECK(cudaGetDeviceCount(&visible));
  const int device = world.local_rank() % visible;
  MONE_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp properties;
  MONE_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return "cuda device " + std::to_string(device) + " (" + properties.name + ") of " + std::to_string(visible) +
         " visible";
}

float* allocate_pinned(size_t floats) {
  void* memory = nullptr;
  MONE_CUDA_CHECK(cudaMallocHost(&memory, std::max<size_t>(floats, 1) * sizeof(float)));
  return static_cast<float*>(memory);
}
void release_pinned(float* memory) {
  if (memory) cudaFreeHost(memory);
}
// Page-locked batch memory: the device copies the loader's batches directly
// and asynchronously (cudaMallocHost memory is 4 KiB aligned, more than the
// loader's 64 bytes).
const HostAllocator& pinned_host_allocator() {
  static const HostAllocator allocator{allocate_pinned, release_pinned, "pinned"};
  return allocator;
}

AdamWSettings adamw_settings(const TrainOptions& options) {
  return AdamWSettings{0.9, 0.999, 1e-8, options.weight_decay};
}

// A DeviceModel, owned, with its context and batch upload: the training
// backend trains it, evaluation reads its logits.
template <class T>
class OwnedCudaModel : public ForwardModel {
 public:
  OwnedCudaModel(const ModelConfig& config, int64_t max_batch)
      : model_(config, max_batch, context_),
        batches_(config, max_batch, context_),
        pixels_per_image_(config.image_height * config.image_width * config.channels) {}

  const ModelConfig& config() const override { return model_.config(); }
  const float* logits(const Batch& batch, const RoutingPlan& plan) override {
    send(batch);
    model_.forward_logits(batches_.images(), batch.count, plan);
    host_logits_.resize(static_cast<size_t>(batch.count * model_.config().classes));
    MONE_CUDA_CHECK(cudaMemcpyAsync(host_logits_.data(), model_.logits(), host_logits_.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost, context_.stream()));
    context_.synchronize();
    return host_logits_.data();
  }

  const HostAllocator& batch_allocator() const override { return pinned_host_allocator(); }

  // The batch's images and labels into batches(): straight from a batch
  // loaded into pinned memory (batch_allocator), through a pinned slot
  // otherwise. Returns once the images are copied: the loader refills its
  // buffer as soon as the next batch is asked for.
  void send(const Batch& batch) {
    std::copy_n(batch.labels.data(), batch.count, batches_.host_labels());
    if (batch.images.allocator() == &pinned_host_allocator()) {
      batches_.upload_from(batch.images.data(), batch.count);
      return;
    }
    std::copy_n(batch.images.data(), batch.count * pixels_per_image_, batches_.host_images());
    batches_.upload(batch.count);
  }
  const cuda::DeviceContext& context() const { return context_; }
  cuda::DeviceModel<T>& model() { return model_; }
  const cuda::BatchUpload<T>& batches() const { return batches_; }

 private:
  cuda::DeviceContext context_;  // first: the members below are built on it
  cuda::DeviceModel<T> model_;
  cuda::BatchUpload<T> batches_;
  int64_t pixels_per_image_;
  std::vector<float> host_logits_;
};

template <class T>
class CudaTrainingBackend : public TrainingBackend {
 public:
  CudaTrainingBackend(const TrainOptions& options, const ModelConfig& config, const World& world,
                      Communicator& host, const std::string& device)
      : host_(host),
        ranks_(world.size()),
        accumulate_(options.accumulate),
        forward_(config, std::max(options.batch / options.accumulate, options.eval_batch) / world.size()),
        model_(forward_.model()),
        context_(forward_.context()),
        device_optimizer_(model_.infos(), model_.numel(), adamw_settings(options), context_),
        parameters_(config),
        optimizer_(parameters_.infos(), parameters_.numel(), adamw_settings(options)),
        losses_(static_cast<size_t>(options.accumulate) * sizeof(float), "micro-step losses"),
        norm_(sizeof(double), "gradient norm") {
    // Graphs only where a step is nothing but the model's own work on fixed
    // buffers: one rank (the NCCL hook would start collectives inside the
    // capture), one micro-step (the loss slot moves with the micro-step), and
    // MoNE (a V-MoE pass waits for its routing on the host, model_cuda.h).
    if (options.cuda_graphs && world.size() == 1 && options.accumulate == 1 && !config.is_vmoe())
      graphs_ = std::make_unique<cuda::StepGraphs>(context_);
    if (config.is_vmoe()) model_.set_superclasses(options.superclass_of_class, options.router_loss_weight);
    // The trainer draws them (Trainer::initialise_parameters) before they are uploaded.
    model_.set_label_smoothing(options.label_smoothing);
    description_ = device + ", " + (sizeof(T) == 2 ? "bf16" : "fp32") + " compute, fp32 master weights";
    if (ranks_ == 1) return;
    description_ += "; gradients averaged " + choose_gradient_path(options, world);
  }

  std::string description() const override { return description_; }
  ParameterSet<float>& parameters() override { return parameters_; }
  AdamW& optimizer() override { return optimizer_; }

  void pull_state() override {
    model_.to_cpu_layout(model_.values(), parameters_.values());
    std::vector<float> first(static_cast<size_t>(parameters_.numel())), second(first.size());
    model_.to_cpu_layout(device_optimizer_.first_moment(), first.data());
    model_.to_cpu_layout(device_optimizer_.second_moment(), second.data());
    optimizer_.restore(device_optimizer_.step_count(), std::move(first), std::move(second));
  }
  void push_state() override {
    model_.load_parameters(parameters_.values());
    model_.to_device_layout(optimizer_.first_moment().data(), device_optimizer_.first_moment());
    model_.to_device_layout(optimizer_.second_moment().data(), device_optimizer_.second_moment());
    device_optimizer_.set_step_count(optimizer_.step_count());
  }

  void begin_step(const std::string& context) override {
    model_.zero_grads();
    step_context_ = context;
    micro_steps_ = 0;
#ifdef MONE_HAVE_NCCL
    if (buckets_) buckets_->begin(context);
#endif
  }
  void micro_step(const Batch& batch, const std::vector<TrainingPass>& passes, bool last) override {
    if (micro_steps_ == accumulate_) throw std::logic_error("CudaTrainingBackend: more micro-steps than --accumulate");
    if (passes.size() != 1) throw std::logic_error("CudaTrainingBackend: one pass per step (check_train_options)");
    const RoutingPlan& plan = passes.front().plan;
    last_micro_step_ = last;
    forward_.send(batch);
    float* loss = losses_.as<float>() + micro_steps_;
    const auto pass = [&] {
      model_.forward_backward(forward_.batches().images(), forward_.batches().labels(), batch.count,
                              plan, loss);
    };
    if (graphs_)
      replay_or_run(cuda::StepKey{plan.tokens_per_expert, batch.count}, pass);
    else
      pass();
    ++micro_steps_;
  }
  double finish_gradients() override {
#ifdef MONE_HAVE_NCCL
    if (buckets_) {
      buckets_->finish();  // scaled and started during backward (gradients_ready)
    } else
#endif
    {
      if (accumulate_ > 1)
        cuda::scale_gradients(model_.grads(), model_.numel(), 1.0f / static_cast<float>(accumulate_), context_);
      average_gradients();
    }
    if (!attention_reported_) {  // which attention serves the step is known once a step has run
      attention_reported_ = true;
      for (const std::string& line : model_.attention_report()) std::cout << "attention: " << line << "\n";
    }
    std::vector<float> losses(static_cast<size_t>(micro_steps_));
    MONE_CUDA_CHECK(cudaMemcpyAsync(losses.data(), losses_.data(), losses.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost, context_.stream()));
    context_.synchronize();
    double sum = 0;
    for (const float loss : losses) sum += loss;
    return sum;
  }
  double clip_gradients(double max_norm) override {
    cuda::clip_grad_norm(model_.grads(), model_.numel(), max_norm, norm_.as<double>(), context_);
    double norm = 0;
    MONE_CUDA_CHECK(cudaMemcpyAsync(&norm, norm_.data(), sizeof(double), cudaMemcpyDeviceToHost, context_.stream()));
    context_.synchronize();
    return norm;
  }
  void update(double lr) override {
    device_optimizer_.step<T>(model_.values(), model_.grads(), lr, model_.compute_values(), context_);
  }
  ForwardModel& forward_model() override { return forward_; }

 private:
  std::string choose_gradient_path(const TrainOptions& options, const World& world);
  void replay_or_run(const cuda::StepKey& key, const std::function<void()>& pass);
#ifdef MONE_HAVE_NCCL
  void gradients_ready(int64_t begin, int64_t end);
#endif
  void average_gradients();

  Communicator& host_;
  int ranks_;
  int64_t accumulate_;
  OwnedCudaModel<T> forward_;
  cuda::DeviceModel<T>& model_;
  const cuda::DeviceContext& context_;
  cuda::DeviceAdamW device_optimizer_;  // moments in the device layout
  ParameterSet<float> parameters_;      // the host state (CPU layout): pull_state/push_state
  AdamW optimizer_;
  cuda::DeviceBuffer losses_;  // float per micro-step
  cuda::DeviceBuffer norm_;    // double
#ifdef MONE_HAVE_NCCL
  std::unique_ptr<NcclCommunicator> nccl_;
  std::unique_ptr<GradientBuckets> buckets_;  // over nccl_, started during backward
#endif
  bool last_micro_step_ = false;  // the micro-step whose backward finishes the gradients (NCCL path)
  std::vector<float> host_gradients_;  // staging of the host path
  std::unique_ptr<cuda::StepGraphs> graphs_;  // null: op by op
  std::set<cuda::StepKey> seen_keys_;        // ran once uncaptured
  bool attention_reported_ = false;
  std::string description_;
  std::string step_context_;
  int64_t micro_steps_ = 0;
};

// NCCL when it was built and every rank of the job has a device of its own
// (NCCL refuses two ranks on one device); the ranks agree, since all must
// take the same path. Otherwise the host communicator (MPI) on a copy.
template <class T>
std::string CudaTrainingBackend<T>::choose_gradient_path(const TrainOptions& options, const World& world) {
  int visible = 0;
  MONE_CUDA_CHECK(cudaGetDeviceCount(&visible));
  std::vector<double> shared_devices = {world.local_size() > visible ? 1.0 : 0.0};
  sum_over_ranks(host_, shared_devices, "choice of the gradient collective");
#ifdef MONE_HAVE_NCCL
  if (shared_devices[0] == 0) {
    nccl_ = std::make_unique<NcclCommunicator>(world, std::chrono::seconds(options.comm_timeout));
    nccl_->set_producer_stream(context_.stream());
    buckets_ = std::make_unique<GradientBuckets>(*nccl_, model_.grads(), model_.numel(), bucket_options(options));
    model_.set_gradient_ready([this](int64_t begin, int64_t end) { gradients_ready(begin, end); });
    return "with NCCL on the devices, in buckets during backward";
  }
  return "over MPI through host memory (some node runs more ranks than it has devices; NCCL needs one each)";
#else
  (void)options;
  return "over MPI through host memory (this build has no NCCL)";
#endif
}

// NCCL path: backward of the last micro-step has enqueued the last writes
// of [begin, end). Scale the range for accumulation on the compute stream
// (each element once, the float multiply of scale_gradients over the whole
// buffer), then hand it to the buckets: a complete bucket's allreduce starts
// on NCCL's stream after an event of the compute stream, while backward goes
// on. The buckets start in the same order on every rank.
#ifdef MONE_HAVE_NCCL
template <class T>
void CudaTrainingBackend<T>::gradients_ready(int64_t begin, int64_t end) {
  if (!last_micro_step_) return;
  if (accumulate_ > 1)
    cuda::scale_gradients(model_.grads() + begin, end - begin, 1.0f / static_cast<float>(accumulate_), context_);
  buckets_->mark_ready(begin, end);
}
#endif

// A step's forward and backward as a CUDA graph per key (the routing plan's
// tokens per expert and the batch size, which fix every shape and pointer
// the pass uses). The first pass of a
// key runs op by op, since it builds the cuBLASLt and cuDNN plans, which must
// not happen inside a capture; the second is captured, later ones replay it.
// Graph replay gives the bits of the direct run (CudaModel's graph test). A
// "range:" schedule draws e_c from a continuum, so keys past kMaxGraphs run
// op by op rather than capture graphs that are never replayed.
template <class T>
void CudaTrainingBackend<T>::replay_or_run(const cuda::StepKey& key, const std::function<void()>& pass) {
  constexpr size_t kMaxGraphs = 32;
  if (graphs_->contains(key) || (seen_keys_.count(key) != 0 && graphs_->graphs() < kMaxGraphs)) {
    graphs_->launch(key, pass);
    return;
  }
  seen_keys_.insert(key);
  pass();
}

// Host path (no NCCL, or ranks sharing a device). Blocking: when it returns
// the gradients on the device are the average, and work enqueued on the
// context's stream afterwards sees them.
template <class T>
void CudaTrainingBackend<T>::average_gradients() {
  if (ranks_ == 1) return;
  const size_t count = static_cast<size_t>(model_.numel());  // the layout's gaps are zeros on every rank
  host_gradients_.resize(count);
  MONE_CUDA_CHECK(cudaMemcpyAsync(host_gradients_.data(), model_.grads(), count * sizeof(float),
                                  cudaMemcpyDeviceToHost, context_.stream()));
  context_.synchronize();
  host_.allreduce(host_gradients_.data(), count, ElementType::float32, ReduceOp::average, step_context_);
  MONE_CUDA_CHECK(cudaMemcpyAsync(model_.grads(), host_gradients_.data(), count * sizeof(float),
                                  cudaMemcpyHostToDevice, context_.stream()));
  context_.synchronize();  // host_gradients_ is rewritten by the next step
}

}  // namespace

std::unique_ptr<TrainingBackend> make_cuda_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                            const World& world, Communicator& host) {
  const std::string device = select_device(world);
  if (options.precision == "fp32")
    return std::make_unique<CudaTrainingBackend<float>>(options, config, world, host, device);
  return std::make_unique<CudaTrainingBackend<cuda::bf16>>(options, config, world, host, device);
}

std::unique_ptr<ForwardModel> make_cuda_forward_model(const std::string& precision, const ModelConfig& config,
                                                      const std::vector<float>& values, int64_t max_batch,
                                                      const World& world) {
  select_device(world);
  auto load = [&](auto forward) -> std::unique_ptr<ForwardModel> {
    forward->model().load_parameters(values.data());
    return forward;
  };
  if (precision == "fp32") return load(std::make_unique<OwnedCudaModel<float>>(config, max_batch));
  return load(std::make_unique<OwnedCudaModel<cuda::bf16>>(config, max_batch));
}

}  // namespace mone
