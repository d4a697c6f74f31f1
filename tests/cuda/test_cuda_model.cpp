// The whole device model against the CPU model (in double) for the `tiny`
// preset at e_c in {1, 0.5, 0.3} and as Mobile V-MoE: loss, routing and
// every parameter's gradient; and bitwise determinism of two device runs.
//
// Tolerances. fp32 mode: loss 1e-5, gradients 1e-4 per parameter (normwise,
// device_test_support.h): the op tests hold 1e-5 each, and a gradient here is
// the product of some fifty chained fp32 ops over 6 blocks. bf16 mode: loss
// and gradients 5e-2 per parameter at e_c = 1; below it, bf16 activations
// move router probabilities by ~1e-3, enough to flip the choice of tokens
// whose probabilities are that close, after which the two models compute
// different (both correct) functions: there only the loss is compared (5e-2)
// and the share of tokens routed alike reported. These values are estimates
// made without a device; the first run on a GPU confirms or adjusts them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <utility>

#include "model/cuda/batch_upload.h"
#include "model/cuda/check.h"
#include "model/cuda/model_cuda.h"
#include "model/cuda/step_graph.h"
#include "model/model.h"
#include "tests/common/model_fixtures.h"
#include "tests/cuda/cuda_test_fixture.h"

namespace mone::testing {
namespace {

constexpr int64_t kBatch = 8;

template <class T>
struct DeviceRun {
  double loss = 0;
  std::vector<double> grads;
  std::vector<int32_t> expert_of_token;
};

// A device model for kBatch images holding `values` (CPU layout).
template <class T>
std::unique_ptr<cuda::DeviceModel<T>> loaded_model(const ModelConfig& config, const std::vector<double>& values,
                                                   const cuda::DeviceContext& context) {
  auto model = std::make_unique<cuda::DeviceModel<T>>(config, kBatch, context);
  const std::vector<float> host_values(values.begin(), values.end());
  model->load_parameters(host_values.data());
  return model;
}

template <class T>
DeviceRun<T> run_device(const ModelConfig& config, const std::vector<double>& values, const Batch<double>& batch,
                        double ec, const cuda::DeviceContext& context, bool cudnn_attention = true) {
  const auto loaded = loaded_model<T>(config, values, context);
  cuda::DeviceModel<T>& model = *loaded;
  model.set_cudnn_attention(cudnn_attention);
  auto images = upload<T>(batch.images);
  auto labels = upload_ints(batch.labels);
  auto loss = poisoned<float>(1);
  model.forward_backward(images.get(), labels.get(), kBatch, plan_routing(model.config(), ec), loss.get());
  DeviceRun<T> run;
  run.loss = download(loss, context)[0];
  std::vector<float> grads(model.parameter_count());
  model.download_gradients(grads.data());
  run.grads.assign(grads.begin(), grads.end());
  run.expert_of_token.resize(kBatch * config.tokens());
  MONE_CUDA_CHECK(cudaMemcpy(run.expert_of_token.data(), model.expert_of_token(),
                             run.expert_of_token.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
  for (const std::string& line : model.attention_report()) std::cout << "  attention " << line << "\n";
  return run;
}

// Random parameter values and a random batch for `config`, from `seed`.
std::pair<std::vector<double>, Batch<double>> random_inputs(const ModelConfig& config, uint64_t seed) {
  ParameterSet<double> params(config);
  randomise_parameters(params, seed);
  return {std::vector<double>(params.values(), params.values() + params.numel()),
          random_batch<double>(config, kBatch, seed + 1)};
}

template <class T>
using CudaModel = CudaTest<T>;
using Modes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaModel, Modes, ModeName);

TYPED_TEST(CudaModel, LossRoutingAndGradientsMatchTheCpuModel) {
  using T = TypeParam;
  constexpr bool fp32 = sizeof(T) == 4;
  const ModelConfig config = preset_config("tiny");
  for (const double ec : {1.0, 0.5, 0.3}) {
    SCOPED_TRACE("e_c " + std::to_string(ec));
    Model<double> cpu(config, this->seed);
    randomise_parameters(cpu.params(), this->seed);
    // The device holds fp32 masters: the CPU runs on the same values.
    std::vector<double> values(cpu.params().values(), cpu.params().values() + cpu.params().numel());
    values = rounded<float>(values);
    std::copy(values.begin(), values.end(), cpu.params().values());
    Batch<double> batch = random_batch<double>(config, kBatch, this->seed + 1);
    batch.images = rounded<T>(batch.images);  // the images as the device holds them
    cpu.params().zero_grads();
    const double loss = cpu.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan_routing(cpu.config(), ec));

    const DeviceRun<T> device = run_device<T>(config, values, batch, ec, *this->context);
    const std::vector<int32_t>& cpu_experts = cpu.routing().expert_of_token;
    int64_t alike = 0;
    for (size_t i = 0; i < cpu_experts.size(); ++i) alike += cpu_experts[i] == device.expert_of_token[i];
    const bool same_routing = alike == static_cast<int64_t>(cpu_experts.size());
    std::cout << "  e_c " << ec << ": " << alike << " of " << cpu_experts.size() << " tokens routed alike\n";
    if (fp32) {
      ASSERT_TRUE(same_routing) << "fp32 routing differs from the CPU's: " << alike << " of " << cpu_experts.size();
    }
    EXPECT_TRUE(near_reference("loss", {device.loss}, {loss}, fp32 ? 1e-5 : 5e-2));
    if (!same_routing) continue;
    for (const ParamInfo& p : cpu.params().infos()) {
      const std::vector<double> want(cpu.params().grads() + p.offset, cpu.params().grads() + p.offset + p.numel);
      const std::vector<double> got(device.grads.begin() + p.offset, device.grads.begin() + p.offset + p.numel);
      EXPECT_TRUE(near_reference(p.name, got, want, fp32 ? 1e-4 : 5e-2));
    }
  }
}

// Mobile V-MoE (tiny with 3 experts in the last 2 blocks, top-1 and top-2,
// with the router's super-class loss) against the CPU model, at the MoNE
// test's tolerances. Images routed alike are required in fp32; in bf16 the
// router's top-k may flip an image whose probabilities are that close, and
// then only the loss is compared.
TYPED_TEST(CudaModel, VmoeMatchesTheCpuModel) {
  using T = TypeParam;
  constexpr bool fp32 = sizeof(T) == 4;
  const std::vector<int32_t> superclass_of_class = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  constexpr double kRouterLossWeight = 0.3;
  for (const int64_t top_k : {1, 2}) {
    SCOPED_TRACE("top-" + std::to_string(top_k));
    ModelConfig config = preset_config("tiny");
    config.arch = Arch::vmoe;
    config.experts = 3;
    config.moe_blocks = 2;
    config.top_k = top_k;
    Model<double> cpu(config, this->seed);
    randomise_parameters(cpu.params(), this->seed);
    cpu.set_superclasses(superclass_of_class, kRouterLossWeight);
    std::vector<double> values(cpu.params().values(), cpu.params().values() + cpu.params().numel());
    values = rounded<float>(values);
    std::copy(values.begin(), values.end(), cpu.params().values());
    Batch<double> batch = random_batch<double>(config, kBatch, this->seed + 1);
    batch.images = rounded<T>(batch.images);
    cpu.params().zero_grads();
    const RoutingPlan plan = plan_routing(config, 1.0);
    const double loss = cpu.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan);

    const cuda::DeviceContext& context = *this->context;
    const auto loaded = loaded_model<T>(config, values, context);
    cuda::DeviceModel<T>& model = *loaded;
    model.set_superclasses(superclass_of_class, kRouterLossWeight);
    auto images = upload<T>(batch.images);
    auto labels = upload_ints(batch.labels);
    auto device_loss = poisoned<float>(1);
    model.forward_backward(images.get(), labels.get(), kBatch, plan, device_loss.get());
    std::vector<int32_t> experts(static_cast<size_t>(kBatch * top_k));
    context.synchronize();
    MONE_CUDA_CHECK(cudaMemcpy(experts.data(), model.expert_of_slot(), experts.size() * sizeof(int32_t),
                               cudaMemcpyDeviceToHost));
    const bool same_routing = experts == cpu.routing().expert_of_slot;
    if (fp32) {
      ASSERT_TRUE(same_routing) << "fp32 routing of the images differs from the CPU's";
    }
    EXPECT_TRUE(near_reference("loss", download(device_loss, context), {loss}, fp32 ? 1e-5 : 5e-2));
    if (!same_routing) continue;
    std::vector<float> grads(model.parameter_count());
    model.download_gradients(grads.data());
    for (const ParamInfo& p : cpu.params().infos()) {
      const std::vector<double> want(cpu.params().grads() + p.offset, cpu.params().grads() + p.offset + p.numel);
      const std::vector<double> got(grads.begin() + p.offset, grads.begin() + p.offset + p.numel);
      EXPECT_TRUE(near_reference(p.name, got, want, fp32 ? 1e-4 : 5e-2));
    }
  }
}

// The backward hook for the overlapped allreduce: contiguous ranges from the
// end of the gradient buffer to its start, covering it once, as many as the
// blocks plus the head and the embeddings.
TYPED_TEST(CudaModel, GradientReadyRangesCoverTheBufferOnceFromTheEnd) {
  using T = TypeParam;
  const ModelConfig config = preset_config("tiny");
  const auto [values, batch] = random_inputs(config, this->seed);
  const auto loaded = loaded_model<T>(config, values, *this->context);
  cuda::DeviceModel<T>& model = *loaded;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  model.set_gradient_ready([&](int64_t begin, int64_t end) { ranges.emplace_back(begin, end); });
  auto images = upload<T>(batch.images);
  auto labels = upload_ints(batch.labels);
  auto loss = poisoned<float>(1);
  model.forward_backward(images.get(), labels.get(), kBatch, plan_routing(model.config(), 0.5), loss.get());
  ASSERT_EQ(ranges.size(), static_cast<size_t>(config.depth + 2));
  EXPECT_EQ(ranges.front().second, model.numel());
  EXPECT_EQ(ranges.back().first, 0);
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_LT(ranges[i].first, ranges[i].second) << "range " << i;
    if (i > 0) {
      EXPECT_EQ(ranges[i].second, ranges[i - 1].first) << "range " << i;
    }
  }
}

TYPED_TEST(CudaModel, TwoRunsGiveTheSameBits) {
  using T = TypeParam;
  const ModelConfig config = preset_config("tiny");
  const auto [values, batch] = random_inputs(config, this->seed);
  const DeviceRun<T> first = run_device<T>(config, values, batch, 0.5, *this->context);
  const DeviceRun<T> second = run_device<T>(config, values, batch, 0.5, *this->context);
  EXPECT_TRUE(bitwise_same("loss", {first.loss}, {second.loss}));
  EXPECT_TRUE(bitwise_same("gradients", first.grads, second.grads));
  EXPECT_EQ(first.expert_of_token, second.expert_of_token);
}

// Every parameter of the master and of the compute copy starts on a 256-byte
// boundary (cuBLASLt's fast kernels; the bias epilogue needs 16 bytes), also
// when the parameter count is no multiple of the alignment (tiny: 10 classes).
TYPED_TEST(CudaModel, EveryParameterIsAligned) {
  using T = TypeParam;
  cuda::DeviceModel<T> model(preset_config("tiny"), kBatch, *this->context);
  for (const ParamInfo& p : model.infos()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(model.values() + p.offset) % 256, 0u) << p.name << " (master)";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(model.compute_values() + p.offset) % 256, 0u) << p.name << " (compute)";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(model.grads() + p.offset) % 256, 0u) << p.name << " (gradient)";
  }
}

// The step replayed as a CUDA graph, on a batch sent through BatchUpload's
// pinned slots and copy stream, gives the bits of the direct run.
TYPED_TEST(CudaModel, GraphReplayOfAnUploadedBatchGivesTheSameBits) {
  using T = TypeParam;
  const ModelConfig config = preset_config("tiny");
  const auto [values, batch] = random_inputs(config, this->seed);
  const DeviceRun<T> direct = run_device<T>(config, values, batch, 0.5, *this->context);

  const cuda::DeviceContext& context = *this->context;
  const auto loaded = loaded_model<T>(config, values, context);
  cuda::DeviceModel<T>& model = *loaded;
  cuda::BatchUpload<T> upload(config, kBatch, context);
  std::copy(batch.images.begin(), batch.images.end(), upload.host_images());
  std::copy(batch.labels.begin(), batch.labels.end(), upload.host_labels());
  upload.upload(kBatch);
  auto loss = poisoned<float>(1);
  const RoutingPlan plan = plan_routing(model.config(), 0.5);
  auto step = [&] {
    model.zero_grads();
    model.forward_backward(upload.images(), upload.labels(), kBatch, plan, loss.get());
  };
  // NaN into what the step writes before each launch: a graph that does
  // nothing would otherwise leave the uncaptured step's (correct) bits.
  auto poison = [&] {
    MONE_CUDA_CHECK(cudaMemsetAsync(model.grads(), 0xff, model.numel() * sizeof(float), context.stream()));
    MONE_CUDA_CHECK(cudaMemsetAsync(loss.get(), 0xff, sizeof(float), context.stream()));
  };
  step();  // uncaptured first: creates the cuBLASLt plans
  cuda::StepGraphs graphs(context);
  for (const char* launch : {"capture and first launch", "replay"}) {
    SCOPED_TRACE(launch);
    poison();
    graphs.launch(cuda::StepKey{plan.tokens_per_expert, kBatch}, step);
    std::vector<float> grads(model.parameter_count());
    model.download_gradients(grads.data());
    EXPECT_TRUE(bitwise_same("loss", {download(loss, context)[0]}, {direct.loss}));
    EXPECT_TRUE(bitwise_same("gradients", std::vector<double>(grads.begin(), grads.end()), direct.grads));
  }
  EXPECT_EQ(graphs.graphs(), 1u);
}

// bf16: the model with cuDNN's attention (the default in builds with cuDNN)
// and with our kernel throughout compute the same function to bf16 accuracy
// (e_c = 1, where routing cannot flip between them). Without cuDNN in the
// build both runs use our kernel and must then agree bitwise.
using CudaModelBf16 = CudaTest<bf16>;
TEST_F(CudaModelBf16, CudnnAttentionAndOurKernelAgree) {
  const ModelConfig config = preset_config("tiny");
  const auto [values, batch] = random_inputs(config, seed);
  const DeviceRun<bf16> with_cudnn = run_device<bf16>(config, values, batch, 1.0, *context, true);
  const DeviceRun<bf16> ours = run_device<bf16>(config, values, batch, 1.0, *context, false);
#if MONE_HAVE_CUDNN_ATTENTION
  constexpr double kTolerance = 5e-2;  // two bf16 computations, each within 2e-2 of the reference per op
#else
  constexpr double kTolerance = 0;
#endif
  EXPECT_TRUE(near_reference("loss", {with_cudnn.loss}, {ours.loss}, kTolerance));
  EXPECT_TRUE(near_reference("gradients", with_cudnn.grads, ours.grads, kTolerance));
}

// Evaluation's forward-only pass gives the logits of the training pass, and
// leaves the gradients alone.
TYPED_TEST(CudaModel, ForwardLogitsAreTheLogitsOfForwardBackward) {
  using T = TypeParam;
  const ModelConfig config = preset_config("tiny");
  const auto [values, batch] = random_inputs(config, this->seed);
  const cuda::DeviceContext& context = *this->context;
  const auto loaded = loaded_model<T>(config, values, context);
  cuda::DeviceModel<T>& model = *loaded;
  auto images = upload<T>(batch.images);
  auto labels = upload_ints(batch.labels);
  auto loss = poisoned<float>(1);
  const size_t logits = static_cast<size_t>(kBatch * config.classes);
  auto download_logits = [&] {
    std::vector<float> host(logits);
    context.synchronize();
    MONE_CUDA_CHECK(cudaMemcpy(host.data(), model.logits(), logits * sizeof(float), cudaMemcpyDeviceToHost));
    return std::vector<double>(host.begin(), host.end());
  };
  model.forward_backward(images.get(), labels.get(), kBatch, plan_routing(model.config(), 0.5), loss.get());
  const std::vector<double> trained = download_logits();
  std::vector<float> grads_before(model.parameter_count()), grads_after(model.parameter_count());
  model.download_gradients(grads_before.data());
  model.forward_logits(images.get(), kBatch, plan_routing(model.config(), 0.5));
  EXPECT_TRUE(bitwise_same("logits", download_logits(), trained));
  model.download_gradients(grads_after.data());
  EXPECT_EQ(grads_before, grads_after);
}

// A buffer in the CPU layout survives the trip through the device layout,
// whose gaps are zero.
TYPED_TEST(CudaModel, LayoutConversionsRoundTrip) {
  using T = TypeParam;
  const ModelConfig config = preset_config("tiny");
  const cuda::DeviceContext& context = *this->context;
  cuda::DeviceModel<T> model(config, 1, context);
  const std::vector<double> values = rounded<float>(this->random->nonzero_vector(model.parameter_count()));
  const std::vector<float> host(values.begin(), values.end());
  auto device = poisoned<float>(model.numel());
  model.to_device_layout(host.data(), device.get());
  std::vector<float> back(host.size());
  model.to_cpu_layout(device.get(), back.data());
  EXPECT_EQ(back, host);
  const std::vector<double> whole = download(device, context);
  double outside = 0;  // the gaps: the sum of |x| over the device buffer minus the parameters'
  for (const double x : whole) outside += std::fabs(x);
  for (const double x : values) outside -= std::fabs(x);
  EXPECT_NEAR(outside, 0.0, 1e-6 * static_cast<double>(values.size()));
}

}  // namespace
}  // namespace mone::testing
