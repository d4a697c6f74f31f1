// One split's shards, opened and verified, addressed by sample index: the
// Loader's reader, and what tools use to look at raw (uint8) samples.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/encoded_shard.h"
#include "data/shard.h"

namespace mone {

class SplitReader {
 public:
  // Opens every shard of `dataset`; throws DataError naming a bad file.
  SplitReader(const Dataset& dataset, bool verify_checksums);

  // Raw storage: reads sample `sample`'s image (H*W*C bytes) into `image`
  // and returns its label.
  int32_t read(int64_t sample, uint8_t* image) const;

  struct EncodedSample {
    std::vector<uint8_t> bytes;  // the JPEG or PNG file
    int64_t height = 0, width = 0;
  };
  // Encoded storage: the sample's file and stored size; returns its label.
  int32_t read_encoded(int64_t sample, EncodedSample& out) const;

 private:
  // The shard holding `sample`, and the sample's index in it.
  std::pair<size_t, int64_t> locate(int64_t sample) const;

  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<std::unique_ptr<EncodedShardReader>> encoded_shards_;
  std::vector<int64_t> firsts_;  // split index of each shard's first sample
};

}  // namespace mone
