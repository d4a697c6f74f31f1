#include <algorithm>
#include <cstring>

#include "data/error.h"
#include "data/random.h"
#include "data/sources.h"

namespace mone {

namespace {

class SyntheticSource : public SampleSource {
 public:
  SyntheticSource(const SyntheticOptions& options, uint64_t part, int64_t count)
      : shape_(options.shape), classes_(options.classes), count_(count),
        key_(data_random::key(options.seed, data_random::kSynthetic, part)) {}

  int64_t size() const override { return count_; }

  int32_t read(int64_t index, uint8_t* image) const override {
    data_random::Stream stream(data_random::key(key_, static_cast<uint64_t>(index)));
    const auto label = static_cast<int32_t>(stream.below(static_cast<uint64_t>(classes_)));
    // Eight pixels per draw: generating 224x224x3 images must not dominate benchmarks.
    const int64_t bytes = shape_.pixels();
    for (int64_t at = 0; at < bytes; at += 8) {
      const uint64_t word = stream.next();
      std::memcpy(image + at, &word, static_cast<size_t>(std::min<int64_t>(8, bytes - at)));
    }
    return label;
  }

 private:
  ImageShape shape_;
  int64_t classes_;
  int64_t count_;
  uint64_t key_;
};

}  // namespace

SourceDataset make_synthetic(const SyntheticOptions& options) {
  const ImageShape& shape = options.shape;
  if (shape.height <= 0 || shape.width <= 0 || shape.channels <= 0) {
    throw DataError("synthetic image shape " + shape.to_string() + " must be positive (--height, --width, --channels)");
  }
  if (options.classes <= 0 || options.classes > (int64_t{1} << 31) - 1) {
    throw DataError("synthetic --classes " + std::to_string(options.classes) + " must be in [1, 2^31)");
  }
  if (options.train_count <= 0 || options.test_count < 0) {
    throw DataError("synthetic --count must be positive and --test-count non-negative");
  }
  SourceDataset source;
  source.shape = shape;
  source.classes = options.classes;
  for (int64_t c = 0; c < options.classes; ++c) source.class_names.push_back("class" + std::to_string(c));
  source.train = std::make_unique<SyntheticSource>(options, 0, options.train_count);
  source.test = std::make_unique<SyntheticSource>(options, 1, options.test_count);
  return source;
}

}  // namespace mone
