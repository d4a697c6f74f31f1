#include "data/split_reader.h"

#include <algorithm>

#include "data/error.h"

namespace mone {

SplitReader::SplitReader(const Dataset& dataset, bool verify_checksums) {
  int64_t first = 0;
  for (const ShardEntry& entry : dataset.shards) {
    const ShardExpectation expected{dataset.split, dataset.shape, dataset.classes, entry, verify_checksums};
    if (dataset.storage == Storage::encoded) {
      encoded_shards_.push_back(std::make_unique<EncodedShardReader>(dataset.dir / entry.file, expected));
    } else {
      shards_.push_back(std::make_unique<ShardReader>(dataset.dir / entry.file, expected));
    }
    firsts_.push_back(first);
    first += entry.samples;
  }
}

std::pair<size_t, int64_t> SplitReader::locate(int64_t sample) const {
  const size_t shard =
      static_cast<size_t>(std::upper_bound(firsts_.begin(), firsts_.end(), sample) - firsts_.begin() - 1);
  return {shard, sample - firsts_[shard]};
}

int32_t SplitReader::read(int64_t sample, uint8_t* image) const {
  if (shards_.empty()) {
    throw DataError(encoded_shards_.front()->file() + ": holds encoded images; this reads raw (version 1) datasets only");
  }
  const auto [shard, offset] = locate(sample);
  shards_[shard]->read_images(offset, 1, image);
  return shards_[shard]->labels()[static_cast<size_t>(offset)];
}

int32_t SplitReader::read_encoded(int64_t sample, EncodedSample& out) const {
  const auto [shard, offset] = locate(sample);
  const EncodedShardReader& reader = *encoded_shards_[shard];
  reader.read(offset, out.bytes);
  out.height = reader.height(offset);
  out.width = reader.width(offset);
  return reader.labels()[static_cast<size_t>(offset)];
}

}  // namespace mone
