// The sample-sequence contract (docs/data-format.md, "Sample sequence").
//
// All ranks share one global stream of samples: position p (0, 1, 2, ...)
// holds epoch p / N, sample order_e[p % N], where order_e is a permutation of
// 0..N-1 that depends only on (seed, e) (the identity for evaluation). A
// global batch of G samples is the stream positions [q, q + G); rank r of R
// takes positions q + r, q + r + R, q + r + 2R, ... So the ranks' batches are
// disjoint, their union is the global batch, and a run that stops after P
// samples resumes at position P with any rank count.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace mone {

// Permutation of 0..samples-1 for one epoch: a pure function of (seed, epoch).
std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch);

// The stream position of slot `slot` of `rank`'s share of the global batch
// that starts at stream position `batch_first`.
inline int64_t rank_position(int64_t batch_first, int64_t rank, int64_t world, int64_t slot) {
  return batch_first + rank + slot * world;
}

struct SampleRef {
  int64_t epoch = 0;
  int64_t sample = 0;  // index into the split, 0..N-1
};

class SampleOrder {
 public:
  SampleOrder(int64_t samples, uint64_t seed, bool shuffle);
  SampleRef at(int64_t position);

 private:
  const std::vector<int64_t>& order(int64_t epoch);

  int64_t samples_;
  uint64_t seed_;
  bool shuffle_;
  std::map<int64_t, std::vector<int64_t>> cached_;  // at most two epochs: a batch may straddle
};

}  // namespace mone
