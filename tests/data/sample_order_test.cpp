// The sample-sequence contract as pure functions: epoch permutations and
// each rank's share of a global batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/random.h"
#include "data/sample_order.h"

namespace mone {
namespace {

bool is_permutation_of_range(std::vector<int64_t> order) {
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] != static_cast<int64_t>(i)) return false;
  return true;
}

TEST(SampleOrder, EpochOrderIsAPermutationReproducibleFromSeedAndEpoch) {
  const std::vector<int64_t> first = epoch_order(1000, 7, 3);
  EXPECT_TRUE(is_permutation_of_range(first));
  EXPECT_EQ(first, epoch_order(1000, 7, 3));  // same (seed, epoch): same order
  EXPECT_NE(first, epoch_order(1000, 7, 4));  // another epoch: another order
  EXPECT_NE(first, epoch_order(1000, 8, 3));  // another seed: another order
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(first, identity);
}

TEST(SampleOrder, EpochOrderIsPinned) {
  // Pins the documented algorithm (SplitMix64 stream, Lemire draw,
  // Fisher-Yates): a change here reshuffles every resumed run.
  const std::vector<int64_t> order = epoch_order(10, 0, 0);
  ASSERT_TRUE(is_permutation_of_range(order));
  EXPECT_EQ(order, epoch_order(10, 0, 0));
  data_random::Stream stream(data_random::key(0, data_random::kEpochOrder, 0));
  std::vector<int64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  for (int64_t i = 9; i > 0; --i) std::swap(expected[i], expected[stream.below(i + 1)]);
  EXPECT_EQ(order, expected);
}

TEST(SampleOrder, UniformDrawStaysInRangeAndCoversIt) {
  data_random::Stream stream(42);
  std::vector<int> hits(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t value = stream.below(7);
    ASSERT_LT(value, 7u);
    ++hits[value];
  }
  for (const int h : hits) EXPECT_GT(h, 850);  // ~1000 each
}

TEST(SampleOrder, StreamWalksEpochsInOrder) {
  SampleOrder order(50, 11, true);
  const std::vector<int64_t> epoch0 = epoch_order(50, 11, 0), epoch1 = epoch_order(50, 11, 1);
  for (int64_t p = 0; p < 100; ++p) {
    const SampleRef ref = order.at(p);
    EXPECT_EQ(ref.epoch, p / 50);
    EXPECT_EQ(ref.sample, p < 50 ? epoch0[p] : epoch1[p - 50]);
  }
  SampleOrder in_order(50, 11, false);
  EXPECT_EQ(in_order.at(123).sample, 23);
  EXPECT_EQ(in_order.at(123).epoch, 2);
}

TEST(SampleOrder, RanksCoverEachGlobalBatchExactlyOnce) {
  for (int64_t world = 1; world <= 4; ++world) {
    const int64_t per_rank = 5, global = per_rank * world;
    for (int64_t first : {int64_t{0}, int64_t{37}}) {
      std::multiset<int64_t> seen;
      for (int64_t rank = 0; rank < world; ++rank)
        for (int64_t slot = 0; slot < per_rank; ++slot) seen.insert(rank_position(first, rank, world, slot));
      std::multiset<int64_t> expected;
      for (int64_t p = first; p < first + global; ++p) expected.insert(p);
      EXPECT_EQ(seen, expected) << "world " << world;
    }
  }
}

}  // namespace
}  // namespace mone
