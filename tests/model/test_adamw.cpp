// AdamW against hand-computed steps, its weight-decay mask over the real
// parameter set, and the global gradient norm and clipping.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <omp.h>

#include "model/adamw.h"
#include "model/parameters.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

// Two decayed weights followed by two biases, one of them with zero gradient.
std::vector<ParamInfo> two_params() {
  return {{"w", {2}, 0, 2, ParamKind::weight}, {"b", {2}, 2, 2, ParamKind::bias}};
}

TEST(AdamW, FirstStepMatchesHandComputedValues) {
  AdamWSettings settings;
  settings.weight_decay = 0.1;
  AdamW adamw(two_params(), 4, settings);
  std::vector<float> values = {1.0f, -2.0f, 0.5f, 3.0f};
  const std::vector<float> grads = {0.5f, -0.25f, 0.1f, 0.0f};
  adamw.step(values.data(), grads.data(), 0.1);

  // Step 1: m/(1-b1) = g and v/(1-b2) = g^2, so the update is g / (|g| + eps).
  // Decayed:  p (1 - 0.1 * 0.1) - 0.1 * g / (|g| + 1e-8)
  EXPECT_NEAR(values[0], 0.99 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6);     // 0.89
  EXPECT_NEAR(values[1], -1.98 + 0.1 * 0.25 / (0.25 + 1e-8), 1e-6);  // -1.88
  // Not decayed: p - 0.1 * g / (|g| + eps); a zero gradient leaves p alone.
  EXPECT_NEAR(values[2], 0.5 - 0.1 * 0.1 / (0.1 + 1e-8), 1e-6);      // 0.4
  EXPECT_EQ(values[3], 3.0f);

  EXPECT_EQ(adamw.step_count(), 1);
  EXPECT_NEAR(adamw.first_moment()[0], 0.05, 1e-8);       // (1 - 0.9) * 0.5
  EXPECT_NEAR(adamw.second_moment()[0], 0.00025, 1e-10);  // (1 - 0.999) * 0.25
}

TEST(AdamW, SecondStepUsesBiasCorrectedMoments) {
  AdamWSettings settings;
  settings.weight_decay = 0.1;
  AdamW adamw(two_params(), 4, settings);
  std::vector<float> values = {1.0f, -2.0f, 0.5f, 3.0f};
  const std::vector<float> grads = {0.5f, -0.25f, 0.1f, 0.0f};
  adamw.step(values.data(), grads.data(), 0.1);
  adamw.step(values.data(), grads.data(), 0.1);
  // With a constant gradient the bias-corrected moments are again g and g^2:
  // m = 0.9 * 0.05 + 0.1 * 0.5 = 0.095, / (1 - 0.81) = 0.5;
  // v = 0.999 * 0.00025 + 0.001 * 0.25 = 0.00049975, / (1 - 0.998001) = 0.25.
  EXPECT_NEAR(adamw.first_moment()[0], 0.095, 1e-7);
  EXPECT_NEAR(adamw.second_moment()[0], 0.00049975, 1e-9);
  const double u = 0.5 / (0.5 + 1e-8);
  EXPECT_NEAR(values[0], (0.99 - 0.1 * u) * 0.99 - 0.1 * u, 1e-6);  // 0.7811
  EXPECT_NEAR(values[2], 0.5 - 2 * 0.1 * (0.1 / (0.1 + 1e-8)), 1e-6);
}

TEST(AdamW, DecaysOnlyWeightsAndTheRouterWeight) {
  const ModelConfig config = testing::small_config();
  ParameterSet<float> params(config);
  testing::randomise_parameters(params, 7);
  params.zero_grads();  // zero gradients: only the decay moves a parameter
  const std::vector<float> before(params.values(), params.values() + params.numel());
  AdamWSettings settings;
  settings.weight_decay = 0.5;
  AdamW adamw(params.infos(), params.numel(), settings);
  adamw.step(params.values(), params.grads(), 0.1);

  for (const ParamInfo& info : params.infos()) {
    const bool decayed = info.kind == ParamKind::weight || info.kind == ParamKind::router_weight;
    EXPECT_EQ(is_decayed(info.kind), decayed) << info.name;
    for (int64_t i = info.offset; i < info.offset + info.numel; ++i) {
      const float expected = decayed ? static_cast<float>(before[i] * (1.0 - 0.1 * 0.5)) : before[i];
      ASSERT_FLOAT_EQ(params.values()[i], expected) << info.name << " element " << i - info.offset;
    }
  }
}

// Enough values for the update to run on the threads (each taking a share of
// all values, across the weight and bias ranges), against one thread.
TEST(AdamW, TwoThreadsGiveTheBitsOfOne) {
  std::vector<ParamInfo> infos;
  int64_t numel = 0;
  for (int64_t layer = 0; layer < 3; ++layer) {
    for (const auto& [numel_of, kind] : {std::pair<int64_t, ParamKind>{10007, ParamKind::weight},
                                         {37, ParamKind::bias},
                                         {5, ParamKind::router_weight}}) {
      infos.push_back({"p" + std::to_string(infos.size()), {numel_of}, numel, numel_of, kind});
      numel += numel_of;
    }
  }
  std::vector<float> start(numel), grads(numel);
  for (int64_t i = 0; i < numel; ++i) {
    start[i] = std::sin(0.37 * double(i));
    grads[i] = std::cos(0.11 * double(i)) * 1e-2f;
  }
  AdamWSettings settings;
  settings.weight_decay = 0.1;
  const auto three_steps = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    AdamW adamw(infos, numel, settings);
    std::vector<float> values = start;
    for (int step = 0; step < 3; ++step) adamw.step(values.data(), grads.data(), 0.01);
    omp_set_num_threads(before);
    return values;
  };
  const std::vector<float> one = three_steps(1), two = three_steps(2);
  for (int64_t i = 0; i < numel; ++i) ASSERT_EQ(one[i], two[i]) << "value " << i;
}

TEST(AdamW, RestoreRejectsMomentsOfTheWrongSize) {
  AdamW adamw(two_params(), 4, AdamWSettings{});
  EXPECT_THROW(adamw.restore(3, std::vector<float>(3), std::vector<float>(4)), std::invalid_argument);
  adamw.restore(3, std::vector<float>(4, 1.0f), std::vector<float>(4, 2.0f));
  EXPECT_EQ(adamw.step_count(), 3);
  EXPECT_EQ(adamw.second_moment()[3], 2.0f);
}

TEST(GradientNorm, GlobalNormAndClipping) {
  std::vector<float> grads = {3.0f, 0.0f, -4.0f};
  EXPECT_DOUBLE_EQ(global_grad_norm(grads.data(), 3), 5.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads.data(), 3, 10.0), 5.0);  // under the limit: unchanged
  EXPECT_EQ(grads[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads.data(), 3, 1.0), 5.0);  // returns the norm before clipping
  EXPECT_FLOAT_EQ(grads[0], 0.6f);
  EXPECT_FLOAT_EQ(grads[2], -0.8f);
  EXPECT_NEAR(global_grad_norm(grads.data(), 3), 1.0, 1e-7);
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads.data(), 3, 0.0), global_grad_norm(grads.data(), 3));  // 0: off
}

TEST(GradientNorm, SameBitsAtAnyThreadCount) {
  std::vector<float> grads(100003);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = std::sin(0.37 * static_cast<double>(i)) * 1e-3f;
  const int previous = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = global_grad_norm(grads.data(), static_cast<int64_t>(grads.size()));
  omp_set_num_threads(3);
  const double three = global_grad_norm(grads.data(), static_cast<int64_t>(grads.size()));
  omp_set_num_threads(previous);
  EXPECT_EQ(one, three);
}

}  // namespace
}  // namespace mone
