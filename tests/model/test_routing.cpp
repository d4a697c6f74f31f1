// Expert Preferred Routing and the expert-sorted layout (method page,
// "Router and EPR" and section 2), against brute-force references written
// here, on random inputs that include ties and zero probabilities.
#include <algorithm>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "model/capacity.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/ops_moe.h"
#include "tests/common/model_fixtures.h"
#include "tests/common/test_random.h"

namespace mone {
namespace {

using testing::TestRandom;

// EPR by sorting: per image, for j = E down to 2, sort the unassigned tokens
// by (-probs[:, j], index) and give the first k_j to expert j.
template <class T>
std::vector<int32_t> reference_routing(const std::vector<T>& probs, int64_t B, int64_t N, int64_t E,
                                       const std::vector<int64_t>& k) {
  std::vector<int32_t> expert(B * N, 0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<bool> assigned(N, false);
    for (int64_t j = E - 1; j >= 1; --j) {
      std::vector<int64_t> candidates;
      for (int64_t n = 0; n < N; ++n)
        if (!assigned[n]) candidates.push_back(n);
      std::sort(candidates.begin(), candidates.end(), [&](int64_t x, int64_t y) {
        const T px = probs[(b * N + x) * E + j], py = probs[(b * N + y) * E + j];
        return px != py ? px > py : x < y;
      });
      for (int64_t i = 0; i < k[j]; ++i) {
        assigned[candidates[i]] = true;
        expert[b * N + candidates[i]] = static_cast<int32_t>(j);
      }
    }
  }
  return expert;
}

// Slots of each image ordered by (expert descending, index); slot p of image b
// is row p*B + b.
std::vector<int32_t> reference_sorted_order(const std::vector<int32_t>& expert, int64_t B, int64_t N) {
  std::vector<int32_t> source(B * N);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t x, int64_t y) { return expert[b * N + x] > expert[b * N + y]; });
    for (int64_t p = 0; p < N; ++p) source[p * B + b] = static_cast<int32_t>(b * N + order[p]);
  }
  return source;
}

// Random k_2..k_E with sum <= N, k_1 the rest (any split is legal for EPR).
std::vector<int64_t> random_split(TestRandom& random, int64_t N, int64_t E) {
  std::vector<int64_t> k(E, 0);
  int64_t left = N;
  for (int64_t j = E - 1; j >= 1; --j) left -= k[j] = random.index(left + 1);
  k[0] = left;
  return k;
}

template <class T>
void check_random_routing(uint64_t seed, int levels) {
  TestRandom random(seed);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t B = 1 + random.index(3), N = 1 + random.index(20), E = 2 + random.index(4);
    const std::vector<int64_t> k = random_split(random, N, E);
    // Quantised to `levels` values (0 included) so that ties are common.
    std::vector<T> probs(B * N * E);
    for (T& p : probs) p = static_cast<T>(static_cast<double>(random.index(levels)) / levels);
    std::vector<int32_t> expert(B * N, -1);
    expert_preferred_routing(probs.data(), B, N, E, k, expert.data());
    ASSERT_EQ(expert, reference_routing(probs, B, N, E, k))
        << "trial " << trial << ": B " << B << " N " << N << " E " << E << " levels " << levels;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < E; ++j)
        ASSERT_EQ(std::count(expert.begin() + b * N, expert.begin() + (b + 1) * N, static_cast<int32_t>(j)), k[j])
            << "image " << b << " expert " << j << " trial " << trial;
  }
}

TEST(ExpertPreferredRouting, MatchesBruteForceWithManyTiesDouble) { check_random_routing<double>(1, 3); }
TEST(ExpertPreferredRouting, MatchesBruteForceWithManyTiesFloat) { check_random_routing<float>(2, 4); }
TEST(ExpertPreferredRouting, MatchesBruteForceWithoutTies) { check_random_routing<double>(3, 1 << 30); }

TEST(ExpertPreferredRouting, HandWorkedExample) {
  // E = 3, k = (2, 2, 1). Expert 3 takes token 1 (0.9 ties with token 3; the
  // lower index wins). Expert 2 would prefer token 1 (0.99) but it is taken:
  // it gets token 0 (0.8) and token 2 (0.3, tied with token 3). Tokens 3 and
  // 4 stay at expert 1 although token 3 had expert 3's top probability.
  const std::vector<double> probs = {
      0.0, 0.8, 0.1,   //
      0.0, 0.99, 0.9,  //
      0.0, 0.3, 0.5,   //
      0.0, 0.3, 0.9,   //
      0.0, 0.1, 0.2};
  std::vector<int32_t> expert(5, -1);
  expert_preferred_routing(probs.data(), 1, 5, 3, {2, 2, 1}, expert.data());
  EXPECT_EQ(expert, (std::vector<int32_t>{1, 2, 1, 0, 0}));
}

TEST(ExpertPreferredRouting, AllZeroProbabilitiesGoByIndex) {
  // If assigned tokens were excluded by zeroing their probability, the first
  // tokens would tie with everyone else and be picked again.
  const int64_t N = 7, E = 4;
  std::vector<float> probs(2 * N * E, 0.0f);
  std::vector<int32_t> expert(2 * N, -1);
  expert_preferred_routing(probs.data(), 2, N, E, {1, 2, 3, 1}, expert.data());
  const std::vector<int32_t> one_image = {3, 2, 2, 2, 1, 1, 0};
  std::vector<int32_t> expected = one_image;
  expected.insert(expected.end(), one_image.begin(), one_image.end());
  EXPECT_EQ(expert, expected);
}

TEST(ExpertSortedOrder, LargestExpertFirstThenIndexTokenMajor) {
  TestRandom random(5);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t B = 1 + random.index(3), N = 1 + random.index(12), E = 1 + random.index(4);
    std::vector<int32_t> expert(B * N);
    for (int32_t& e : expert) e = static_cast<int32_t>(random.index(E));
    std::vector<int32_t> source(B * N, -1);
    expert_sorted_order(expert.data(), B, N, E, source.data());
    ASSERT_EQ(source, reference_sorted_order(expert, B, N)) << "trial " << trial;
  }
}

TEST(ExpertGroups, OneRangePerExpertLargestFirst) {
  // k = (5, 0, 3, 4) tokens per image, B = 2: rows 8 at width 16, then 6 at
  // width 8, (none at width 4), 10 at width 2. Empty groups may be present or
  // not; the non-empty ones must tile the rows in this order.
  const std::vector<ExpertGroup> groups = expert_groups({5, 0, 3, 4}, {2, 4, 8, 16}, 2);
  std::vector<ExpertGroup> non_empty;
  for (const ExpertGroup& g : groups)
    if (g.rows > 0) non_empty.push_back(g);
  ASSERT_EQ(non_empty.size(), 3u);
  const int64_t expected[3][3] = {{0, 8, 16}, {8, 6, 8}, {14, 10, 2}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(non_empty[i].row_begin, expected[i][0]) << "group " << i;
    EXPECT_EQ(non_empty[i].rows, expected[i][1]) << "group " << i;
    EXPECT_EQ(non_empty[i].width, expected[i][2]) << "group " << i;
  }
}

TEST(ModelRouting, FollowsRouterProbabilitiesAndCapacity) {
  // The model's routing decision of a pass equals EPR on the router
  // probabilities computed from outside, with k from the capacity solver.
  const ModelConfig config = testing::small_config();
  Model<double> model(config, 7);
  testing::randomise_parameters(model.params(), 8);
  const auto batch = testing::random_batch<double>(config, 3, 9);
  const int64_t N = config.tokens(), E = config.experts;
  for (double capacity : {1.0, 0.5, 0.2}) {
    model.forward(batch.images.data(), batch.size, plan_routing(model.config(), capacity));
    const Routing& routing = model.routing();
    const std::vector<double> c = capacity_for(capacity, E);
    const std::vector<int64_t> k = tokens_per_expert(c, N);
    EXPECT_EQ(routing.plan.capacity, c);
    EXPECT_EQ(routing.plan.tokens_per_expert, k);
    EXPECT_DOUBLE_EQ(routing.plan.requested_capacity, capacity);
    EXPECT_DOUBLE_EQ(routing.plan.realised_capacity, realised_capacity(k));
    const auto embedded = testing::embed_tokens(model.params(), config, batch.images.data(), batch.size);
    const auto probs = testing::router_probabilities(model.params(), config, embedded, batch.size);
    const auto expected = reference_routing(probs, batch.size, N, E, k);
    EXPECT_EQ(routing.expert_of_token, expected) << "e_c " << capacity;
    EXPECT_EQ(routing.source_of_row, reference_sorted_order(expected, batch.size, N)) << "e_c " << capacity;
  }
}

// The random router (method page, "Random router"): each image gets the
// plan's k_j tokens per expert in an order drawn from (key, sample index):
// the same image with the same key routes alike wherever it sits in a batch,
// another key routes it differently, and the router's weights play no part.
TEST(ModelRouting, RandomRouterIsAPermutationOfKeyAndSample) {
  ModelConfig config = testing::small_config();
  config.router = Router::random;
  Model<double> model(config, 7);
  testing::randomise_parameters(model.params(), 8);
  const auto batch = testing::random_batch<double>(config, 3, 9);
  const int64_t N = config.tokens(), E = config.experts;
  const RoutingPlan plan = plan_routing(config, 0.5);
  const auto routed = [&](uint64_t key, std::vector<int64_t> samples) {
    model.set_random_routing(key, std::move(samples));
    model.forward(batch.images.data(), batch.size, plan);
    return model.routing().expert_of_token;
  };
  const std::vector<int32_t> first = routed(11, {4, 5, 6});
  for (int64_t b = 0; b < batch.size; ++b) {
    std::vector<int64_t> count(static_cast<size_t>(E), 0);
    for (int64_t n = 0; n < N; ++n) ++count[static_cast<size_t>(first[static_cast<size_t>(b * N + n)])];
    EXPECT_EQ(count, plan.tokens_per_expert) << "image " << b;
  }
  EXPECT_EQ(routed(11, {4, 5, 6}), first);
  // Image 0 now carries sample 5: it must route as image 1 did.
  const std::vector<int32_t> moved = routed(11, {5, 4, 6});
  EXPECT_TRUE(std::equal(moved.begin(), moved.begin() + N, first.begin() + N));
  EXPECT_NE(routed(12, {4, 5, 6}), first);
  testing::randomise_parameters(model.params(), 10);  // another router: the same assignment
  EXPECT_EQ(routed(11, {4, 5, 6}), first);
  model.set_random_routing(11, {});
  EXPECT_THROW(model.forward(batch.images.data(), batch.size, plan), std::logic_error);
}

// ---- Mobile V-MoE: per-image top-k and the image-sorted layout (model/ops_moe.h).

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

}  // namespace
}  // namespace mone
