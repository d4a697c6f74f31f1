// Writes a SourceDataset as a mone dataset: shards of `shard_size` samples
// per split (train, val when requested, test) and the manifest, which is
// written last so a directory without one is never mistaken for a dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/dataset.h"
#include "data/progress.h"
#include "data/sources.h"

namespace mone {

struct ConvertOptions {
  std::filesystem::path out;
  int64_t shard_size = 10000;
  int64_t validation_count = 0;  // taken from the training part
  uint64_t seed = 0;             // chooses the validation samples
  int deflate_level = 0;
  ProgressStyle progress = ProgressStyle::none;
};

Manifest convert(const SourceDataset& source, const ConvertOptions& options);

// in_validation[i]: training-part sample i goes to the val split. The first
// `validation_count` entries of a seeded permutation; both splits keep the
// source order.
std::vector<bool> validation_mask(int64_t train_size, int64_t validation_count, uint64_t seed);

}  // namespace mone
