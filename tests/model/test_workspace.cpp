// Steady-state memory and determinism of training steps:
//  - the activation workspace stops allocating once the first step has sized
//    it (tensor.h: "later steps with the same shapes ... allocate nothing"),
//    and the block it settles on is paged in before the next step;
//  - two models built from the same seed produce bitwise-equal losses and
//    gradients in float, and so does one model run twice.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <vector>

#include "model/model.h"
#include "model/tensor.h"
#include "tests/common/gradcheck.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

using testing::bitwise_equal;
using testing::compare_buffers;

TEST(Workspace, FirstStepSizesTheBlockAndLaterStepsAllocateNothing) {
  // A step is reset(), takes, settle(). The first step may allocate
  // (overflow blocks, then the block settle() sizes); the same sequence of
  // takes afterwards must be served from that block.
  const std::vector<int64_t> sizes = {3, 100, 7, 4096};
  Workspace workspace;
  size_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    workspace.reset();
    for (int64_t n : sizes) {
      float* p = workspace.take<float>(n);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "step " << step << " n " << n;
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i);  // writable for its whole length
    }
    workspace.settle();
    if (step == 0) after_first = workspace.allocations();
    EXPECT_EQ(workspace.allocations(), after_first) << "step " << step + 1 << " allocated";
  }
  EXPECT_GT(after_first, 0u);
  EXPECT_GE(workspace.capacity_bytes(), (3 + 100 + 7 + 4096) * sizeof(float));
}

TEST(Workspace, TakenMemoryStaysValidThroughSettle) {
  // settle() may replace the block, but what the step took (e.g. the logits
  // the model returns) stays readable until the next reset().
  Workspace workspace;
  workspace.reset();
  double* first = workspace.take<double>(1000);
  for (int i = 0; i < 1000; ++i) first[i] = i * 0.5;
  workspace.settle();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(first[i], i * 0.5) << i;
}

TEST(Workspace, SettledBlockIsPagedInBeforeTheNextStep) {
  // settle() touches every page of the block it allocates, so the next step
  // takes no page faults inside its ops (they cost s16 about 20% of the first
  // step after settle). Measured as this process's minor faults while a step
  // writes the whole block; a few may come from elsewhere in the process.
  const auto minor_faults = [] {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
  };
  constexpr int64_t kFloats = int64_t(64) << 20 >> 2;  // 64 MB: 16384 pages of 4 KB
  Workspace workspace;
  workspace.reset();
  workspace.take<float>(kFloats);
  workspace.settle();
  workspace.reset();
  float* block = workspace.take<float>(kFloats);
  const long before = minor_faults();
  for (int64_t i = 0; i < kFloats; i += 1024) block[i] = 1.0f;
  EXPECT_LT(minor_faults() - before, 64);
}

TEST(ModelWorkspace, NoAllocationAfterFirstTrainingStep) {
  const ModelConfig config = testing::small_config(4);
  Model<float> model(config, 1);
  const auto batch = testing::random_batch<float>(config, 3, 2);
  model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 0.5));
  const size_t after_first = model.workspace().allocations();
  EXPECT_GT(after_first, 0u);
  for (int step = 0; step < 4; ++step) {
    model.params().zero_grads();
    model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 0.5));
    EXPECT_EQ(model.workspace().allocations(), after_first) << "step " << step + 2 << " allocated";
  }
}

TEST(ModelWorkspace, OtherCapacitiesOfTheSameBatchFitTheSameBlock) {
  // A different e_c changes the groups, not the activation sizes, so the
  // random-capacity training mode must not allocate either.
  const ModelConfig config = testing::small_config(4);
  Model<float> model(config, 1);
  const auto batch = testing::random_batch<float>(config, 3, 2);
  model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 1.0));
  model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 1.0));
  const size_t settled = model.workspace().allocations();
  for (double capacity : {0.5, 0.2, 0.95, 1.0}) {
    model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), capacity));
    EXPECT_EQ(model.workspace().allocations(), settled) << "e_c " << capacity;
  }
}

// Loss and gradients of one float training step at e_c 0.5 with non-zero alpha.
struct StepResult {
  float loss;
  std::vector<float> logits, grads;
};
StepResult train_step(Model<float>& model, const testing::Batch<float>& batch) {
  model.params().zero_grads();
  StepResult r;
  r.loss = model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), 0.5));
  const int64_t n_logits = batch.size * model.config().classes;
  r.logits.assign(model.logits(), model.logits() + n_logits);
  r.grads.assign(model.params().grads(), model.params().grads() + model.params().numel());
  return r;
}

void expect_bitwise_equal(const StepResult& a, const StepResult& b) {
  EXPECT_TRUE(bitwise_equal(compare_buffers("loss", &a.loss, &b.loss, 1)));
  EXPECT_TRUE(bitwise_equal(compare_buffers("logits", a.logits.data(), b.logits.data(), a.logits.size())));
  EXPECT_TRUE(bitwise_equal(compare_buffers("grads", a.grads.data(), b.grads.data(), a.grads.size())));
}

TEST(Determinism, SameSeedGivesBitwiseEqualLossAndGrads) {
  const ModelConfig config = testing::small_config(4);
  const auto batch = testing::random_batch<float>(config, 3, 2);
  Model<float> first(config, 42), second(config, 42);
  for (Model<float>* model : {&first, &second})
    for (int64_t l = 0; l < config.depth; ++l)  // alpha != 0: the router path runs too
      *model->params().value(testing::block_param(l, "alpha")) = 0.5f;
  ASSERT_TRUE(bitwise_equal(compare_buffers("initial parameters", first.params().values(), second.params().values(),
                                            first.params().numel())));
  const StepResult a = train_step(first, batch);
  const StepResult b = train_step(second, batch);
  expect_bitwise_equal(a, b);
  // Repeating the step on one model (warm workspace) changes nothing either.
  expect_bitwise_equal(a, train_step(first, batch));
}

TEST(Determinism, DifferentSeedsGiveDifferentModels) {
  const ModelConfig config = testing::small_config(4);
  const auto batch = testing::random_batch<float>(config, 3, 2);
  Model<float> first(config, 42), second(config, 43);
  EXPECT_NE(train_step(first, batch).loss, train_step(second, batch).loss);
}

}  // namespace
}  // namespace mone
