// Routing bookkeeping of a pass: the realised capacity and the FLOP count
// (method page, "FLOPs") for the "tiny" preset, against numbers worked by hand.
#include <vector>

#include <gtest/gtest.h>

#include "model/capacity.h"
#include "model/flops.h"
#include "model/model.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

// tiny: N = 49 tokens (28/4 squared), D = 64, depth 6, E = 4 (widths 8, 16,
// 32, 64), 10 classes, patch 4 on 1 channel (patch_dim 16).
//   router      N*D*E        = 49*64*4   = 12544
//   patch embed N*P*P*C*D    = 49*16*64  = 50176
//   head        D*classes    = 64*10     = 640
//   attention   2*N^2*D      = 2*2401*64 = 307328 per block
constexpr double kFixed = 12544 + 50176 + 640;

TEST(Flops, TinyAtFullCapacity) {
  // Every token at width 64: sum d_token = 49*64 = 3136.
  // block = 12*64*3136 + 307328 = 2408448 + 307328 = 2715776; 6 blocks = 16294656.
  const ModelConfig tiny = preset_config("tiny");
  EXPECT_DOUBLE_EQ(forward_flops_per_image(tiny, {0, 0, 0, 49}), 16294656 + kFixed);
  EXPECT_DOUBLE_EQ(training_flops_per_image(tiny, {0, 0, 0, 49}), 3 * (16294656 + kFixed));
}

TEST(Flops, TinyAtHalfCapacity) {
  // k = (12, 11, 12, 14): sum d_token = 12*8 + 11*16 + 12*32 + 14*64 = 1552.
  // block = 12*64*1552 + 307328 = 1191936 + 307328 = 1499264; 6 blocks = 8995584.
  const ModelConfig tiny = preset_config("tiny");
  EXPECT_DOUBLE_EQ(forward_flops_per_image(tiny, {12, 11, 12, 14}), 8995584 + kFixed);
}

TEST(Flops, VmoeTopOneIsTheDenseViTPlusTheRouterOnOneToken) {
  // tiny with 3 experts in the last 2 blocks. The dense blocks are MoNE's at
  // e_c = 1 (16294656); the router reads one mean token: D*E = 192 instead
  // of MoNE's N*D*E. Top-2 runs each MoE block's MLP twice: + 2 * 8*D^2*N =
  // 2 * 1605632.
  ModelConfig vmoe = preset_config("tiny");
  vmoe.arch = Arch::vmoe;
  vmoe.experts = 3;
  const double fixed = 64 * 3 + 50176 + 640;
  EXPECT_DOUBLE_EQ(vmoe_forward_flops_per_image(vmoe), 16294656 + fixed);
  vmoe.top_k = 2;
  EXPECT_DOUBLE_EQ(vmoe_forward_flops_per_image(vmoe), 16294656 + 2 * 1605632 + fixed);
  EXPECT_DOUBLE_EQ(plan_routing(vmoe, 1.0).forward_flops_per_image, 16294656 + 2 * 1605632 + fixed);
  EXPECT_THROW(plan_routing(vmoe, 0.5), ConfigError);  // no capacity to choose
}

TEST(Flops, ModelReportsRealisedRoutingOfTheLastPass) {
  // One forward of the tiny model at each capacity: the routing it reports
  // gives the hand-worked k, realised capacity and FLOPs.
  const ModelConfig tiny = preset_config("tiny");
  Model<float> model(tiny, 3);
  const auto batch = testing::random_batch<float>(tiny, 2, 4);
  const struct {
    double requested;
    std::vector<int64_t> k;
    double realised, flops;
  } cases[] = {{1.0, {0, 0, 0, 49}, 1.0, 16294656 + kFixed},
               {0.5, {12, 11, 12, 14}, 24.25 / 49, 8995584 + kFixed}};
  for (const auto& expected : cases) {
    model.forward(batch.images.data(), batch.size, plan_routing(model.config(), expected.requested));
    const Routing& routing = model.routing();
    EXPECT_EQ(routing.plan.tokens_per_expert, expected.k) << "e_c " << expected.requested;
    EXPECT_DOUBLE_EQ(routing.plan.requested_capacity, expected.requested);
    EXPECT_NEAR(routing.plan.realised_capacity, expected.realised, 1e-12) << "e_c " << expected.requested;
    EXPECT_DOUBLE_EQ(forward_flops_per_image(tiny, routing.plan.tokens_per_expert), expected.flops);
  }
}

}  // namespace
}  // namespace mone
