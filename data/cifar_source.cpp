#include <fstream>
#include <iterator>

#include "data/error.h"
#include "data/in_memory_source.h"

namespace mone {

namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kPlane = kSide * kSide;  // one colour channel

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open CIFAR file");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Records are label byte(s) then 3 planes (R, G, B) of 32x32, row-major; we
// store HWC, so the planes are interleaved.
std::unique_ptr<SampleSource> load_files(const std::vector<std::filesystem::path>& files,
                                         int64_t label_bytes, int64_t classes) {
  const int64_t record = label_bytes + 3 * kPlane;
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  for (const auto& path : files) {
    const std::vector<uint8_t> bytes = read_file(path);
    if (bytes.empty() || static_cast<int64_t>(bytes.size()) % record != 0) {
      throw DataError(path.string() + ": size " + std::to_string(bytes.size()) +
                      " is not a positive multiple of the " + std::to_string(record) +
                      "-byte CIFAR record");
    }
    for (size_t at = 0; at < bytes.size(); at += static_cast<size_t>(record)) {
      // CIFAR-100 records start with the coarse label; the fine one is last.
      const int32_t label = bytes[at + static_cast<size_t>(label_bytes) - 1];
      if (label >= classes) {
        throw DataError(path.string() + ": record " + std::to_string(at / static_cast<size_t>(record)) +
                        " has label " + std::to_string(label) + ", outside [0, " +
                        std::to_string(classes) + ")");
      }
      labels.push_back(label);
      const uint8_t* planes = bytes.data() + at + label_bytes;
      for (int64_t p = 0; p < kPlane; ++p)
        for (int64_t c = 0; c < 3; ++c) images.push_back(planes[c * kPlane + p]);
    }
  }
  return std::make_unique<InMemorySource>(3 * kPlane, std::move(images), std::move(labels));
}

std::vector<std::string> read_names(const std::filesystem::path& path, int64_t classes) {
  std::ifstream in(path);
  if (!in) return numbered_class_names(classes);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (static_cast<int64_t>(names.size()) != classes) {
    throw DataError(path.string() + ": lists " + std::to_string(names.size()) + " class names, expected " +
                    std::to_string(classes));
  }
  return names;
}

}  // namespace

SourceDataset load_cifar(const std::filesystem::path& dir, CifarVariant variant) {
  SourceDataset source;
  source.shape = {kSide, kSide, 3};
  if (variant == CifarVariant::cifar10) {
    source.classes = 10;
    std::vector<std::filesystem::path> train;
    for (int i = 1; std::filesystem::exists(dir / ("data_batch_" + std::to_string(i) + ".bin")); ++i) {
      train.push_back(dir / ("data_batch_" + std::to_string(i) + ".bin"));
    }
    if (train.empty()) throw DataError((dir / "data_batch_1.bin").string() + ": CIFAR-10 file not found");
    source.train = load_files(train, 1, 10);
    source.test = load_files({dir / "test_batch.bin"}, 1, 10);
    source.class_names = read_names(dir / "batches.meta.txt", 10);
  } else {
    source.classes = 100;
    source.train = load_files({dir / "train.bin"}, 2, 100);
    source.test = load_files({dir / "test.bin"}, 2, 100);
    source.class_names = read_names(dir / "fine_label_names.txt", 100);
  }
  return source;
}

}  // namespace mone
