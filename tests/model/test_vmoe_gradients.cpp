// Finite-difference check of the whole Mobile V-MoE model, Model<double>:
// E = 3 experts in the last block of two (moe_blocks 1), top-1 and top-2,
// with the super-class loss (weight 0.3) and without, every parameter tensor
// (all elements up to 64, 20 random elements of larger ones).
//
// Loss: the mean cross-entropy plus 0.3 times the router's super-class loss,
// as forward_backward returns it, perturbed one element at a time (eps 1e-6,
// central differences). Tolerance: 1e-6 relative error per element, the
// denominator floored at 1e-2 (tests/common/gradcheck.h).
//
// Top-k is discrete: a perturbation could swap two experts of an image. The
// loss counts passes whose choice differs from the unperturbed one and the
// count is asserted zero (seeds: model 3, parameters 6, batch 5, sampling 6;
// parameters 4 sends every image to one expert at top-1, which checks less).
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/ops.h"
#include "model/ops_moe.h"
#include "tests/common/gradcheck.h"
#include "tests/common/model_fixtures.h"
#include "tests/common/test_random.h"

namespace mone {
namespace {

constexpr double kTolerance = 1e-6;
constexpr double kRouterLossWeight = 0.3;
constexpr uint64_t kParameterSeed = 6;

ModelConfig vmoe_config(int64_t top_k) {
  ModelConfig config = testing::small_config(3);
  config.arch = Arch::vmoe;
  config.moe_blocks = 1;
  config.top_k = top_k;
  return config;
}

// (top_k, with the super-class loss)
class VmoeGradients : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(VmoeGradients, EveryParameterMatchesFiniteDifferences) {
  const auto [top_k, with_superclasses] = GetParam();
  const testing::SingleThreaded single_threaded;
  const ModelConfig config = vmoe_config(top_k);
  Model<double> model(config, 3);
  testing::randomise_parameters(model.params(), kParameterSeed);
  const std::vector<int32_t> superclass_of_class = {0, 2, 1};  // small_config has 3 classes
  if (with_superclasses) model.set_superclasses(superclass_of_class, kRouterLossWeight);
  const auto batch = testing::random_batch<double>(config, 4, 5);
  ParameterSet<double>& params = model.params();
  const RoutingPlan plan = plan_routing(config, 1.0);

  params.zero_grads();
  const double trained_loss = model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan);
  const std::vector<double> analytic(params.grads(), params.grads() + params.numel());
  const std::vector<int32_t> routing = model.routing().expert_of_slot;

  int64_t routing_changes = 0;
  auto loss = [&] {
    const double* logits = model.forward(batch.images.data(), batch.size, plan);
    if (model.routing().expert_of_slot != routing) ++routing_changes;
    std::vector<double> probs(batch.size * config.classes);
    double value = cross_entropy_forward(logits, batch.labels.data(), batch.size, config.classes, probs.data());
    if (with_superclasses) {
      std::vector<int32_t> superclass;
      for (const int32_t label : batch.labels) superclass.push_back(superclass_of_class[label]);
      value += kRouterLossWeight *
               superclass_loss_forward(model.router_probs(), superclass.data(), batch.size, config.experts);
    }
    return value;
  };
  EXPECT_NEAR(loss(), trained_loss, 1e-12) << "forward_backward returns the loss the check differentiates";

  testing::expect_parameter_gradients(params, analytic, loss, 6, kTolerance, "top-" + std::to_string(top_k));

  EXPECT_EQ(routing_changes, 0) << "a perturbation swapped an image's experts: pick another seed";

  // Not vacuous: more than one expert is used, and the router learns where it can
  // (top-1's renormalised weight is 1, so only the super-class loss reaches it).
  std::vector<int32_t> used(routing);
  std::sort(used.begin(), used.end());
  EXPECT_GT(std::unique(used.begin(), used.end()) - used.begin(), 1);
  double router = 0;
  for (int64_t i = 0; i < params.info("router.weight").numel; ++i)
    router = std::max(router, std::abs(analytic[params.info("router.weight").offset + i]));
  if (top_k > 1 || with_superclasses)
    EXPECT_GT(router, 1e-4);
  else
    EXPECT_LT(router, 1e-12);  // zero but for the rounding of p / p
}

INSTANTIATE_TEST_SUITE_P(TopKAndSuperclassLoss, VmoeGradients,
                         ::testing::Combine(::testing::Values(int64_t{1}, int64_t{2}), ::testing::Bool()));

}  // namespace
}  // namespace mone
