// The backward hook (Model::set_gradient_ready) that the bucketed allreduce
// relies on: the ranges cover the gradient buffer exactly once, from its end
// toward its start, and backward never writes a range after reporting it.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "model/model.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

TEST(GradientReady, RangesCoverTheBufferBackwardsAndAreFinal) {
  testing::SingleThreaded one_thread;
  const ModelConfig config = testing::small_config();
  Model<float> model(config, 7);
  testing::randomise_parameters(model.params(), 7);
  const auto batch = testing::random_batch<float>(config, 4, 11);
  ParameterSet<float>& params = model.params();

  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<std::vector<float>> reported;  // the gradients of each range when reported
  model.set_gradient_ready([&](int64_t begin, int64_t end) {
    ranges.emplace_back(begin, end);
    reported.emplace_back(params.grads() + begin, params.grads() + end);
  });
  params.zero_grads();
  model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 0.5));

  // Head and final norm, one range per block, then embeddings and router.
  ASSERT_EQ(ranges.size(), static_cast<size_t>(config.depth + 2));
  int64_t expected_end = params.numel();
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_EQ(ranges[i].second, expected_end) << "range " << i;
    EXPECT_LT(ranges[i].first, ranges[i].second) << "range " << i;
    expected_end = ranges[i].first;
    const std::vector<float> now(params.grads() + ranges[i].first, params.grads() + ranges[i].second);
    EXPECT_EQ(now, reported[i]) << "range " << i << " changed after it was reported final";
  }
  EXPECT_EQ(expected_end, 0);
  EXPECT_EQ(ranges[1].first, params.info("blocks." + std::to_string(config.depth - 1) + ".norm1.weight").offset);

  // Without a hook, the same gradients (the hook only observes).
  std::vector<float> with_hook(params.grads(), params.grads() + params.numel());
  model.set_gradient_ready(nullptr);
  params.zero_grads();
  model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 0.5));
  EXPECT_EQ(std::vector<float>(params.grads(), params.grads() + params.numel()), with_hook);
}

}  // namespace
}  // namespace mone
