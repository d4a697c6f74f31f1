// Mobile V-MoE's device ops (model/cuda/ops_moe.h) against the CPU reference
// (model/ops_moe.h, in double on the same inputs as rounded to T): the
// per-image top-k and its backward, dispatch and combine into the
// image-sorted layout, the super-class loss. Outputs poisoned with NaN first,
// "+=" buffers prefilled. Tolerances as test_cuda_ops.cpp (fp32 1e-5, bf16
// 2e-2); copies and routing decisions exact.
#include <cmath>
#include <vector>

#include "model/cuda/check.h"
#include "model/cuda/ops_moe.h"
#include "model/ops_moe.h"
#include "tests/cuda/cuda_test_fixture.h"

namespace mone::testing {
namespace {

// Routing decisions are integers and must match the CPU's, ties included:
// probabilities on a few levels, so that ties are many.
TEST(CudaMoeRouting, TopKMatchesTheCpuTiesIncluded) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t B = 37, E = 5;
  for (const int64_t k : {1, 2, 3}) {
    SCOPED_TRACE("k " + std::to_string(k));
    std::vector<float> probs(B * E);
    for (float& p : probs) p = static_cast<float>((1.0 + std::floor(random.uniform() * 4.0)) / 8.0);
    std::vector<int32_t> expert(B * k);
    std::vector<float> weight(B * k);
    image_top_k_forward<float>(probs.data(), B, E, k, expert.data(), weight.data());
    std::vector<float> dweight(B * k), dprobs(B * E);
    for (float& g : dweight) g = static_cast<float>(random.uniform() - 0.5);
    image_top_k_backward<float>(dweight.data(), probs.data(), expert.data(), B, E, k, dprobs.data());

    auto probs_d = upload<float>(std::vector<double>(probs.begin(), probs.end()));
    auto dweight_d = upload<float>(std::vector<double>(dweight.begin(), dweight.end()));
    DeviceArray<int32_t> expert_d(B * k);
    auto weight_d = poisoned<float>(B * k), dprobs_d = poisoned<float>(B * E);
    cuda::image_top_k_forward(probs_d.get(), B, E, k, expert_d.get(), weight_d.get(), context);
    EXPECT_EQ(download_ints(expert_d, context), expert);
    EXPECT_TRUE(near_reference("weight_of_slot", download(weight_d, context),
                               std::vector<double>(weight.begin(), weight.end()), 1e-6));
    cuda::image_top_k_backward(dweight_d.get(), probs_d.get(), expert_d.get(), B, E, k, dprobs_d.get(), context);
    EXPECT_TRUE(
        near_reference("dprobs", download(dprobs_d, context), std::vector<double>(dprobs.begin(), dprobs.end()), 1e-6));
  }
}

template <class T>
using CudaMoeOps = CudaTest<T>;
using Modes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaMoeOps, Modes, ModeName);

// Dispatch and combine at k = 1 and 2 over an image-sorted layout from the
// CPU's image_sorted_dispatch (some expert without a slot at k = 1).
TYPED_TEST(CudaMoeOps, DispatchAndCombine) {
  using T = TypeParam;
  const cuda::DeviceContext& ctx = *this->context;
  const int64_t B = 5, N = 7, D = 12, E = 3;
  for (const int64_t k : {1, 2}) {
    SCOPED_TRACE("k " + std::to_string(k));
    std::vector<int32_t> expert_of_slot(B * k);
    for (int64_t slot = 0; slot < B * k; ++slot)
      expert_of_slot[slot] = static_cast<int32_t>(k == 1 ? 2 * (slot % 2) : (slot / k + slot % k) % E);
    const ImageDispatch dispatch = image_sorted_dispatch(expert_of_slot.data(), B, k, E, N, D);
    const int32_t* position = dispatch.position_of_slot.data();
    const int64_t rows = B * k * N;
    const auto x = this->input(B * N * D), y = this->input(rows * D), dout = this->input(rows * D),
               dcombined = this->input(B * N * D);
    const auto weight = rounded<float>(this->random->uniform_vector(B * k, 0.1, 0.9));
    const auto dweight0 = this->prefill(B * k);
    std::vector<double> dispatched(rows * D), dx(B * N * D), combined(B * N * D), dy(rows * D), dweight = dweight0;
    moe_dispatch_forward<double>(x.data(), position, B, k, N, D, dispatched.data());
    moe_dispatch_backward<double>(dout.data(), position, B, k, N, D, dx.data());
    moe_combine_forward<double>(x.data(), y.data(), weight.data(), position, B, k, N, D, combined.data());
    moe_combine_backward<double>(dcombined.data(), y.data(), weight.data(), position, B, k, N, D, dy.data(),
                                 dweight.data());

    auto position_d = upload_ints(dispatch.position_of_slot);
    auto x_d = upload<T>(x), y_d = upload<T>(y), dout_d = upload<T>(dout), dcombined_d = upload<T>(dcombined);
    auto weight_d = upload<float>(weight), dweight_d = upload<float>(dweight0);
    auto dispatched_d = poisoned<T>(rows * D), dx_d = poisoned<T>(B * N * D), dy_d = poisoned<T>(rows * D);
    cuda::moe_dispatch_forward<T>(x_d.get(), position_d.get(), B, k, N, D, dispatched_d.get(), ctx);
    cuda::moe_dispatch_backward<T>(dout_d.get(), position_d.get(), B, k, N, D, dx_d.get(), ctx);
    // The combine in place on z, as the step runs it (out aliases z).
    auto combined_d = upload<T>(x);
    cuda::moe_combine_forward<T>(combined_d.get(), y_d.get(), weight_d.get(), position_d.get(), B, k, N, D,
                                 combined_d.get(), ctx);
    cuda::moe_combine_backward<T>(dcombined_d.get(), y_d.get(), weight_d.get(), position_d.get(), B, k, N, D,
                                  dy_d.get(), dweight_d.get(), ctx);
    this->expect_near("dispatched", dispatched_d, dispatched, 0.0);  // a copy: exact
    this->expect_near("dx", dx_d, dx);
    this->expect_near("combined", combined_d, combined);
    this->expect_near("dy", dy_d, dy);
    this->expect_near("dweight (added)", dweight_d, dweight);
  }
}

TEST(CudaMoeLoss, SuperclassLoss) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t B = 9, E = 3, classes = 6;
  const std::vector<int32_t> superclass_of_class = {0, 2, 1, 0, 1, 2};
  std::vector<int32_t> labels(B), superclass(B);
  for (int64_t b = 0; b < B; ++b) {
    labels[b] = static_cast<int32_t>((b * 5) % classes);
    superclass[b] = superclass_of_class[labels[b]];
  }
  std::vector<double> probs(B * E);
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += probs[b * E + e] = 0.2 + random.uniform();
    for (int64_t e = 0; e < E; ++e) probs[b * E + e] = static_cast<float>(probs[b * E + e] / sum);
  }
  const double weight = 0.3, loss0 = 0.75;
  const std::vector<double> dprobs0 = rounded<float>(random.nonzero_vector(B * E, 0.25, 0.75));
  std::vector<double> dprobs = dprobs0;
  const double loss = loss0 + weight * superclass_loss_forward<double>(probs.data(), superclass.data(), B, E);
  superclass_loss_backward<double>(probs.data(), superclass.data(), B, E, weight, dprobs.data());

  auto labels_d = upload_ints(labels), table_d = upload_ints(superclass_of_class);
  DeviceArray<int32_t> superclass_d(B);
  auto probs_d = upload<float>(probs), loss_d = upload<float>({loss0}), dprobs_d = upload<float>(dprobs0);
  cuda::superclass_of_images(labels_d.get(), table_d.get(), B, superclass_d.get(), context);
  EXPECT_EQ(download_ints(superclass_d, context), superclass);
  cuda::superclass_loss_forward(probs_d.get(), superclass_d.get(), B, E, static_cast<float>(weight), loss_d.get(),
                                context);
  cuda::superclass_loss_backward(probs_d.get(), superclass_d.get(), B, E, static_cast<float>(weight), dprobs_d.get(),
                                 context);
  EXPECT_TRUE(near_reference("loss (added)", download(loss_d, context), {loss}, kFp32Tolerance));
  EXPECT_TRUE(near_reference("dprobs (added)", download(dprobs_d, context), dprobs, kFp32Tolerance));
}

}  // namespace
}  // namespace mone::testing
