// Fused AdamW and the gradient norm on the device against the CPU's
// (model/adamw.h), in fp32: master weights and moments are fp32 in both.
#include "model/adamw.h"
#include "model/cuda/adamw.h"
#include "model/cuda/check.h"
#include "model/parameters.h"
#include "tests/common/model_fixtures.h"
#include "tests/cuda/cuda_test_fixture.h"

namespace mone::testing {
namespace {

TEST(CudaAdamW, ThreeStepsMatchTheCpuAndRefreshTheBf16Copy) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  ParameterSet<float> params(small_config());
  const int64_t n = params.numel();
  std::vector<double> values = rounded<float>(random.nonzero_vector(n));
  const AdamWSettings settings;
  AdamW cpu(params.infos(), n, settings);
  cuda::DeviceAdamW device(params.infos(), n, settings, context);
  std::vector<float> cpu_values(values.begin(), values.end());
  auto values_d = upload<float>(values);
  auto copy_d = poisoned<bf16>(n);
  for (int step = 0; step < 3; ++step) {
    const std::vector<double> grads = rounded<float>(random.nonzero_vector(n, 0.01, 2.0));
    const std::vector<float> cpu_grads(grads.begin(), grads.end());
    cpu.step(cpu_values.data(), cpu_grads.data(), 1e-2);
    auto grads_d = upload<float>(grads);
    device.step<bf16>(values_d.get(), grads_d.get(), 1e-2, copy_d.get(), context);
  }
  const std::vector<double> want(cpu_values.begin(), cpu_values.end());
  EXPECT_TRUE(near_reference("values", download(values_d, context), want, kFp32Tolerance));
  EXPECT_TRUE(near_reference("bf16 copy", download(copy_d, context), rounded<bf16>(want), kBf16Tolerance));
}

TEST(CudaAdamW, GradientNormAndClipping) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t n = 100003;  // several norm chunks and a partial one
  const std::vector<double> grads = rounded<float>(random.nonzero_vector(n));
  std::vector<float> cpu(grads.begin(), grads.end());
  const double norm = clip_grad_norm(cpu.data(), n, 10.0);
  auto grads_d = upload<float>(grads);
  DeviceArray<double> norm_d(1);
  cuda::clip_grad_norm(grads_d.get(), n, 10.0, norm_d.get(), context);
  double device_norm = 0;
  context.synchronize();
  MONE_CUDA_CHECK(cudaMemcpy(&device_norm, norm_d.get(), sizeof(double), cudaMemcpyDeviceToHost));
  EXPECT_TRUE(near_reference("norm", {device_norm}, {norm}, 1e-12));
  EXPECT_TRUE(near_reference("clipped", download(grads_d, context), std::vector<double>(cpu.begin(), cpu.end()),
                             kFp32Tolerance));
}

// The 1 / micro-steps scaling of accumulated gradients: the CPU's bits.
TEST(CudaAdamW, ScaleGradientsGivesTheCpuBits) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t n = 10007;
  const std::vector<double> grads = rounded<float>(random.nonzero_vector(n));
  std::vector<float> cpu(grads.begin(), grads.end());
  scale_gradients(cpu.data(), n, 1.0f / 3.0f);
  auto grads_d = upload<float>(grads);
  cuda::scale_gradients(grads_d.get(), n, 1.0f / 3.0f, context);
  EXPECT_TRUE(bitwise_same("scaled", download(grads_d, context), std::vector<double>(cpu.begin(), cpu.end())));
}

// An optimizer restored from another's moments and step count (a resumed
// checkpoint) continues with the same bits.
TEST(CudaAdamW, RestoredStateContinuesWithTheSameBits) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  ParameterSet<float> params(small_config());
  const int64_t n = params.numel();
  const std::vector<double> values = rounded<float>(random.nonzero_vector(n));
  const std::vector<double> grads = rounded<float>(random.nonzero_vector(n, 0.01, 2.0));
  auto grads_d = upload<float>(grads);
  auto straight_values = upload<float>(values);
  cuda::DeviceAdamW straight(params.infos(), n, AdamWSettings{}, context);
  straight.step<float>(straight_values.get(), grads_d.get(), 1e-2, nullptr, context);

  cuda::DeviceAdamW restored(params.infos(), n, AdamWSettings{}, context);
  auto restored_values = upload<float>(download(straight_values, context));
  MONE_CUDA_CHECK(cudaMemcpyAsync(restored.first_moment(), straight.first_moment(), n * sizeof(float),
                                  cudaMemcpyDeviceToDevice, context.stream()));
  MONE_CUDA_CHECK(cudaMemcpyAsync(restored.second_moment(), straight.second_moment(), n * sizeof(float),
                                  cudaMemcpyDeviceToDevice, context.stream()));
  restored.set_step_count(straight.step_count());
  straight.step<float>(straight_values.get(), grads_d.get(), 1e-2, nullptr, context);
  restored.step<float>(restored_values.get(), grads_d.get(), 1e-2, nullptr, context);
  EXPECT_EQ(restored.step_count(), 2);
  EXPECT_TRUE(bitwise_same("values", download(restored_values, context), download(straight_values, context)));
}

}  // namespace
}  // namespace mone::testing
