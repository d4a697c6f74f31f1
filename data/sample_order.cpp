#include "data/sample_order.h"

#include <cstddef>

#include "data/random.h"

namespace mone {

std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch) {
  return data_random::permutation(
      samples, data_random::key(seed, data_random::kEpochOrder, static_cast<uint64_t>(epoch)));
}

SampleOrder::SampleOrder(int64_t samples, uint64_t seed, bool shuffle)
    : samples_(samples), seed_(seed), shuffle_(shuffle) {}

SampleRef SampleOrder::at(int64_t position) {
  const int64_t epoch = position / samples_;
  const int64_t offset = position % samples_;
  return {epoch, shuffle_ ? order(epoch)[static_cast<size_t>(offset)] : offset};
}

const std::vector<int64_t>& SampleOrder::order(int64_t epoch) {
  auto found = cached_.find(epoch);
  if (found != cached_.end()) return found->second;
  if (cached_.size() >= 2) cached_.erase(cached_.begin());
  return cached_.emplace(epoch, epoch_order(samples_, seed_, epoch)).first->second;
}

}  // namespace mone
