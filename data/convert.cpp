#include "data/convert.h"

#include <algorithm>
#include <iostream>

#include "data/channel_statistics.h"
#include "data/error.h"
#include "data/random.h"
#include "data/shard.h"

namespace mone {

namespace {

std::vector<ShardEntry> write_split(const SourceDataset& source, const SampleSource& part,
                                    const std::vector<int64_t>& indices, const std::string& split,
                                    const ConvertOptions& options, Progress& progress,
                                    ChannelStatistics* statistics) {
  const int64_t pixels = source.shape.pixels();
  // Appending a block at a time bounds memory for large images.
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(256, (16 << 20) / pixels));
  std::vector<uint8_t> images(static_cast<size_t>(block * pixels));
  std::vector<int32_t> labels(static_cast<size_t>(block));
  std::vector<ShardEntry> shards;
  const auto total = static_cast<int64_t>(indices.size());
  for (int64_t first = 0; first < total; first += options.shard_size) {
    const int64_t count = std::min(options.shard_size, total - first);
    const std::string name = data_format::shard_file_name(split, static_cast<int64_t>(shards.size()));
    ShardWriter writer(options.out / name, split, source.shape, source.classes, count,
                       options.deflate_level);
    for (int64_t at = 0; at < count; at += block) {
      const int64_t n = std::min(block, count - at);
      for (int64_t j = 0; j < n; ++j) {
        uint8_t* image = images.data() + j * pixels;
        labels[static_cast<size_t>(j)] = part.read(indices[static_cast<size_t>(first + at + j)], image);
        if (statistics != nullptr) statistics->add(image, pixels);
      }
      writer.append(images.data(), labels.data(), n);
      progress.advance(n);
    }
    shards.push_back({name, count, writer.finish()});
  }
  return shards;
}

}  // namespace

std::vector<bool> validation_mask(int64_t train_size, int64_t validation_count, uint64_t seed) {
  const std::vector<int64_t> order =
      data_random::permutation(train_size, data_random::key(seed, data_random::kValidationSplit));
  std::vector<bool> mask(static_cast<size_t>(train_size), false);
  for (int64_t i = 0; i < validation_count; ++i) mask[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  return mask;
}

Manifest convert(const SourceDataset& source, const ConvertOptions& options) {
  const int64_t train_size = source.train->size();
  if (options.shard_size <= 0) {
    throw DataError("--shard-size " + std::to_string(options.shard_size) + " must be positive");
  }
  if (options.validation_count < 0 || options.validation_count >= train_size) {
    throw DataError("--val-count " + std::to_string(options.validation_count) + " must be in [0, " +
                    std::to_string(train_size) + ") (the training samples)");
  }
  if (options.deflate_level < 0 || options.deflate_level > 9) {
    throw DataError("--deflate " + std::to_string(options.deflate_level) + " must be in 0..9");
  }
  std::filesystem::create_directories(options.out);
  if (std::filesystem::exists(options.out / data_format::kManifestFile)) {
    throw DataError(options.out.string() + ": already holds a dataset (" + data_format::kManifestFile +
                    "); remove it or choose another --out");
  }

  const std::vector<bool> in_validation = validation_mask(train_size, options.validation_count, options.seed);
  std::vector<int64_t> train, validation, test;
  for (int64_t i = 0; i < train_size; ++i) (in_validation[static_cast<size_t>(i)] ? validation : train).push_back(i);
  const int64_t test_size = source.test ? source.test->size() : 0;
  for (int64_t i = 0; i < test_size; ++i) test.push_back(i);

  Manifest manifest;
  manifest.shape = source.shape;
  manifest.classes = source.classes;
  manifest.class_names = source.class_names;
  Progress progress(std::cerr, options.progress, train_size + test_size);
  ChannelStatistics statistics(source.shape.channels);
  manifest.splits["train"] = write_split(source, *source.train, train, "train", options, progress, &statistics);
  if (!validation.empty()) {
    manifest.splits["val"] = write_split(source, *source.train, validation, "val", options, progress, nullptr);
  }
  if (!test.empty()) {
    manifest.splits["test"] = write_split(source, *source.test, test, "test", options, progress, nullptr);
  }
  progress.finish();
  statistics.result(manifest.mean, manifest.std);
  write_manifest(options.out, manifest);
  return manifest;
}

}  // namespace mone
