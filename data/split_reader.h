// One split's shards, opened and verified, addressed by sample index: the
// Loader's reader, and what tools use to look at raw (uint8) samples.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/shard.h"

namespace mone {

class SplitReader {
 public:
  // Opens every shard of `dataset`; throws DataError naming a bad file.
  SplitReader(const Dataset& dataset, bool verify_checksums);

  // Reads sample `sample`'s image (H*W*C bytes) into `image` and returns its
  // label.
  int32_t read(int64_t sample, uint8_t* image) const;

 private:
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<int64_t> firsts_;  // split index of each shard's first sample
};

}  // namespace mone
