// Mobile V-MoE's ops (model/ops_moe.h): the image-sorted layout exactly, and
// a finite-difference check of every backward in double, as
// test_ops_gradients does for model/ops.h (random inputs, L = sum(w * out),
// eps 1e-6, tolerance 1e-6 relative with the denominator floored at 1e-2;
// "=" buffers pre-filled with a sentinel, "+=" ones with a random value).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "model/ops_moe.h"
#include "tests/common/gradcheck.h"
#include "tests/common/test_random.h"

namespace mone {
namespace {

using testing::GradWrite;
using testing::OpGradientCheck;
using testing::TestRandom;
using testing::all_within_tolerance;

constexpr double kTolerance = 1e-6;

TEST(ImageTopK, HighestFirstTiesToTheLowerExpertWeightsRenormalised) {
  const std::vector<double> probs = {0.2, 0.5, 0.3,    // image 0
                                     0.4, 0.2, 0.4};   // image 1: a tie
  std::vector<int32_t> experts(4);
  std::vector<double> weights(4);
  image_top_k_forward(probs.data(), 2, 3, 2, experts.data(), weights.data());
  EXPECT_EQ(experts, (std::vector<int32_t>{1, 2, 0, 2}));
  EXPECT_DOUBLE_EQ(weights[0], 0.5 / 0.8);
  EXPECT_DOUBLE_EQ(weights[1], 0.3 / 0.8);
  EXPECT_DOUBLE_EQ(weights[2], 0.5);
  EXPECT_DOUBLE_EQ(weights[3], 0.5);
  image_top_k_forward(probs.data(), 2, 3, 1, experts.data(), weights.data());
  EXPECT_EQ(experts[0], 1);
  EXPECT_EQ(experts[1], 0);
  EXPECT_EQ(weights[0], 1.0);  // top-1: the renormalised weight is exactly 1
}

TEST(ImageSortedDispatch, SlotsByExpertLargestFirstOneGroupPerUsedExpert) {
  // 3 images, top-2, 4 experts (expert 1 unused), N = 2 tokens, D = 5.
  const std::vector<int32_t> expert_of_slot = {3, 0, 2, 3, 0, 2};
  const ImageDispatch d = image_sorted_dispatch(expert_of_slot.data(), 3, 2, 4, 2, 5);
  // Expert 3: slots 0, 3; expert 2: slots 2, 5; expert 0: slots 1, 4.
  EXPECT_EQ(d.position_of_slot, (std::vector<int32_t>{0, 4, 2, 1, 5, 3}));
  EXPECT_EQ(d.slots_per_expert, (std::vector<int64_t>{2, 0, 2, 2}));
  EXPECT_EQ(d.expert_of_group, (std::vector<int64_t>{3, 2, 0}));
  ASSERT_EQ(d.groups.size(), 3u);
  for (size_t g = 0; g < 3; ++g) {
    EXPECT_EQ(d.groups[g].row_begin, static_cast<int64_t>(g) * 4);  // 2 slots of 2 tokens each
    EXPECT_EQ(d.groups[g].rows, 4);
    EXPECT_EQ(d.groups[g].width, 5);
  }
}

TEST(OpGradients, ImageTopK) {
  const int64_t B = 3, E = 4, k = 2;
  TestRandom random(201);
  std::vector<double> probs = random.nonzero_vector(B * E), dprobs;
  for (double& p : probs) p = std::abs(p) + 0.1;  // positive and apart, as a softmax's
  std::vector<int32_t> experts(B * k);
  OpGradientCheck check(202);
  check.add_input("top-k probs", &probs, &dprobs, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& weights) {
        weights.assign(B * k, 0.0);
        image_top_k_forward(probs.data(), B, E, k, experts.data(), weights.data());
      },
      [&](const std::vector<double>& dweights) {
        image_top_k_backward(dweights.data(), probs.data(), experts.data(), B, E, k, dprobs.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, DispatchTopTwo) {
  const int64_t B = 3, k = 2, N = 2, D = 3;
  const std::vector<int32_t> position_of_slot = {0, 4, 2, 1, 5, 3};
  TestRandom random(211);
  std::vector<double> x = random.nonzero_vector(B * N * D), dx;
  OpGradientCheck check(212);
  check.add_input("dispatch x", &x, &dx, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(B * k * N * D, 0.0);
        moe_dispatch_forward(x.data(), position_of_slot.data(), B, k, N, D, out.data());
      },
      [&](const std::vector<double>& dout) {
        moe_dispatch_backward(dout.data(), position_of_slot.data(), B, k, N, D, dx.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, CombineTopTwo) {
  const int64_t B = 3, k = 2, N = 2, D = 3;
  const std::vector<int32_t> position_of_slot = {0, 4, 2, 1, 5, 3};
  TestRandom random(221);
  std::vector<double> z = random.nonzero_vector(B * N * D), y = random.nonzero_vector(B * k * N * D),
                      w = random.nonzero_vector(B * k), dy, dw;
  OpGradientCheck check(222);
  check.add_input("combine y", &y, &dy, GradWrite::assign);
  check.add_input("combine weights (adds)", &w, &dw, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(B * N * D, 0.0);
        moe_combine_forward(z.data(), y.data(), w.data(), position_of_slot.data(), B, k, N, D, out.data());
      },
      [&](const std::vector<double>& dout) {
        moe_combine_backward(dout.data(), y.data(), w.data(), position_of_slot.data(), B, k, N, D, dy.data(),
                             dw.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
  // out = z + ...: the residual passes through with gradient 1 (the caller's).
  std::vector<double> out(B * N * D), zero_y(y.size(), 0.0);
  moe_combine_forward(z.data(), zero_y.data(), w.data(), position_of_slot.data(), B, k, N, D, out.data());
  EXPECT_EQ(out, z);
}

TEST(OpGradients, SuperclassLoss) {
  const int64_t B = 4, E = 3;
  const std::vector<int32_t> superclass = {2, 0, 1, 2};
  TestRandom random(231);
  std::vector<double> probs = random.nonzero_vector(B * E), dprobs;
  for (double& p : probs) p = std::abs(p) + 0.1;
  const double weight = 0.3;
  OpGradientCheck check(232);
  check.add_input("super-class loss probs (adds)", &probs, &dprobs, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out = {weight * superclass_loss_forward(probs.data(), superclass.data(), B, E)};
      },
      [&](const std::vector<double>& dout) {
        // The check's L = w_check * out: the op's weight times the check's.
        superclass_loss_backward(probs.data(), superclass.data(), B, E, weight * dout[0], dprobs.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

}  // namespace
}  // namespace mone
