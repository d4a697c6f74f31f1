// Model::forward_backward in chunks of images (set_chunk_images) against the
// same batch in one pass: the same loss, gradients, logits, router
// probabilities and routing (up to the rounding of the gradients' sums, in
// double), with the learned and the random router and with distillation; the
// gradient hook hears of the whole buffer once, final, after the last chunk;
// and in float the same bits on one thread and on two (the chunks then run
// two at a time).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

#include "model/model.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

constexpr int64_t kBatch = 7;  // chunks of 3: 3 + 3 + 1, the last one short

struct PassResult {
  double loss = 0;
  std::vector<double> grads, logits, router_probs;
  Routing routing;
};

// One forward_backward of the batch at e_c 0.5 on a fresh copy of the model,
// in chunks of `chunk` images (0: whole).
PassResult run_pass(const ModelConfig& config, int64_t chunk, DistillationLoss<double>* distillation = nullptr) {
  testing::SingleThreaded one_thread;
  Model<double> model(config, 3);
  testing::randomise_parameters(model.params(), 3);
  model.set_chunk_images(chunk);
  std::vector<int64_t> samples(kBatch);
  std::iota(samples.begin(), samples.end(), 40);
  model.set_random_routing(17, samples);
  const auto batch = testing::random_batch<double>(config, kBatch, 5);
  model.params().zero_grads();
  PassResult r;
  r.loss =
      model.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan_routing(config, 0.5), distillation);
  const ParameterSet<double>& params = model.params();
  r.grads.assign(params.grads(), params.grads() + params.numel());
  r.logits.assign(model.logits(), model.logits() + kBatch * config.classes);
  r.router_probs.assign(model.router_probs(), model.router_probs() + kBatch * config.tokens() * config.experts);
  r.routing = model.routing();
  return r;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The chunked pass against the whole one. The routing's layout differs (one
// per chunk), so its rows are compared as the tokens they hold.
void expect_same_pass(const PassResult& whole, const PassResult& chunked, const ModelConfig& config) {
  EXPECT_NEAR(chunked.loss, whole.loss, 1e-13);
  ASSERT_EQ(chunked.grads.size(), whole.grads.size());
  EXPECT_LT(max_abs_difference(chunked.grads, whole.grads), 1e-12);
  EXPECT_LT(max_abs_difference(chunked.logits, whole.logits), 1e-13);
  EXPECT_LT(max_abs_difference(chunked.router_probs, whole.router_probs), 1e-15);
  EXPECT_EQ(chunked.routing.expert_of_token, whole.routing.expert_of_token);
  EXPECT_EQ(chunked.routing.plan.tokens_per_expert, whole.routing.plan.tokens_per_expert);

  const int64_t rows = kBatch * config.tokens();
  ASSERT_EQ(static_cast<int64_t>(chunked.routing.source_of_row.size()), rows);
  std::vector<int32_t> sources = chunked.routing.source_of_row;
  std::sort(sources.begin(), sources.end());
  for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(sources[r], r) << "source_of_row is not a permutation";
  // The groups tile the rows; each row's token is one of its group's expert.
  int64_t next_row = 0;
  for (const ExpertGroup& g : chunked.routing.groups) {
    EXPECT_EQ(g.row_begin, next_row);
    next_row += g.rows;
    int64_t expert = 0;  // 0-based, of width expert_width(expert + 1)
    while (expert < config.experts && config.expert_width(expert + 1) != g.width) ++expert;
    for (int64_t r = g.row_begin; r < g.row_begin + g.rows; ++r)
      ASSERT_EQ(chunked.routing.expert_of_token[chunked.routing.source_of_row[r]], expert) << "row " << r;
  }
  EXPECT_EQ(next_row, rows);
}

TEST(ChunkedPass, LearnedRouterGivesTheWholeBatchPass) {
  const ModelConfig config = testing::small_config();
  expect_same_pass(run_pass(config, 0), run_pass(config, 3), config);
  // A chunk as large as the batch is the whole pass.
  const PassResult whole = run_pass(config, 0), one_chunk = run_pass(config, kBatch);
  EXPECT_EQ(one_chunk.loss, whole.loss);
  EXPECT_EQ(one_chunk.grads, whole.grads);
}

TEST(ChunkedPass, RandomRouterDrawsEachImagesOwnOrder) {
  ModelConfig config = testing::small_config();
  config.router = Router::random;
  expect_same_pass(run_pass(config, 0), run_pass(config, 3), config);
}

TEST(ChunkedPass, DistillationReadsEachChunksTeacherLogits) {
  const ModelConfig config = testing::small_config();
  std::vector<double> teacher(kBatch * config.classes);
  for (size_t i = 0; i < teacher.size(); ++i) teacher[i] = std::sin(1.3 * double(i));
  DistillationLoss<double> whole_loss, chunked_loss;
  for (DistillationLoss<double>* d : {&whole_loss, &chunked_loss}) {
    d->teacher_logits = teacher.data();
    d->temperature = 2.0;
    d->kl_weight = 0.7;
    d->label_weight = 0.4;
  }
  expect_same_pass(run_pass(config, 0, &whole_loss), run_pass(config, 3, &chunked_loss), config);
}

TEST(ChunkedPass, GradientsAreReportedOnceWhenAllChunksAreAdded) {
  testing::SingleThreaded one_thread;
  const ModelConfig config = testing::small_config();
  Model<float> model(config, 7);
  testing::randomise_parameters(model.params(), 7);
  model.set_chunk_images(3);
  const auto batch = testing::random_batch<float>(config, kBatch, 11);
  ParameterSet<float>& params = model.params();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<float> reported;
  model.set_gradient_ready([&](int64_t begin, int64_t end) {
    ranges.emplace_back(begin, end);
    reported.assign(params.grads() + begin, params.grads() + end);
  });
  params.zero_grads();
  model.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan_routing(config, 0.5));
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0], std::make_pair(int64_t{0}, params.numel()));
  EXPECT_EQ(reported, std::vector<float>(params.grads(), params.grads() + params.numel()));
}

// An error in a chunk, on whichever thread, reaches the caller.
TEST(ChunkedPass, AChunksErrorIsThrownToTheCaller) {
  ModelConfig config = testing::small_config();
  config.router = Router::random;
  Model<float> model(config, 7);  // no set_random_routing: every chunk's forward throws
  model.set_chunk_images(3);
  const auto batch = testing::random_batch<float>(config, kBatch, 11);
  EXPECT_THROW(model.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan_routing(config, 0.5)),
               std::logic_error);
}

TEST(ChunkedPass, FloatBitsDoNotDependOnTheThreadCount) {
  const ModelConfig config = testing::small_config();
  const auto batch = testing::random_batch<float>(config, kBatch, 13);
  const auto pass = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    Model<float> model(config, 9);
    testing::randomise_parameters(model.params(), 9);
    model.set_chunk_images(3);
    model.params().zero_grads();
    const float loss =
        model.forward_backward(batch.images.data(), batch.labels.data(), kBatch, plan_routing(config, 0.5));
    std::vector<float> grads(model.params().grads(), model.params().grads() + model.params().numel());
    omp_set_num_threads(before);
    return std::make_pair(loss, grads);
  };
  const auto one = pass(1), two = pass(2);
  EXPECT_EQ(one.first, two.first);
  EXPECT_EQ(one.second, two.second);
}

}  // namespace
}  // namespace mone
