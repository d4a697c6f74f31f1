#include "data/split_reader.h"

#include <algorithm>

namespace mone {

SplitReader::SplitReader(const Dataset& dataset, bool verify_checksums) {
  int64_t first = 0;
  for (const ShardEntry& entry : dataset.shards) {
    const ShardExpectation expected{dataset.split, dataset.shape, dataset.classes, entry, verify_checksums};
    shards_.push_back(std::make_unique<ShardReader>(dataset.dir / entry.file, expected));
    firsts_.push_back(first);
    first += entry.samples;
  }
}

int32_t SplitReader::read(int64_t sample, uint8_t* image) const {
  const size_t shard =
      static_cast<size_t>(std::upper_bound(firsts_.begin(), firsts_.end(), sample) - firsts_.begin() - 1);
  const int64_t offset = sample - firsts_[shard];
  shards_[shard]->read_images(offset, 1, image);
  return shards_[shard]->labels()[static_cast<size_t>(offset)];
}

}  // namespace mone
