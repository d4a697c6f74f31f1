#include <zlib.h>

#include <algorithm>

#include "data/error.h"
#include "data/in_memory_source.h"

namespace mone {

namespace {

// The file as given or its .gz twin; gzread reads both plain and gzipped files.
std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"}) {
    if (std::filesystem::exists(dir / candidate)) return dir / candidate;
  }
  throw DataError((dir / name).string() + "[.gz]: IDX file not found");
}

std::vector<uint8_t> read_whole(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw DataError(path.string() + ": cannot open");
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  int got = 0;
  while ((got = gzread(file, buffer, sizeof buffer)) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  const bool failed = got < 0;
  gzclose(file);
  if (failed) throw DataError(path.string() + ": read error (corrupt gzip stream?)");
  return bytes;
}

uint32_t big_endian(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | bytes[3];
}

// IDX: magic 0x0000TTNN (type 0x08 = uint8, NN dimensions), NN big-endian
// uint32 sizes, then the data.
std::vector<uint8_t> read_idx(const std::filesystem::path& path, uint32_t dimensions,
                              std::vector<int64_t>& sizes) {
  std::vector<uint8_t> bytes = read_whole(path);
  const size_t header = 4 + 4 * dimensions;
  if (bytes.size() < header || big_endian(bytes.data()) != (0x0800u | dimensions)) {
    throw DataError(path.string() + ": not a uint8 IDX file with " + std::to_string(dimensions) +
                    " dimensions (bad magic number)");
  }
  int64_t elements = 1;
  sizes.clear();
  for (uint32_t d = 0; d < dimensions; ++d) {
    sizes.push_back(big_endian(bytes.data() + 4 + 4 * d));
    elements *= sizes.back();
  }
  if (static_cast<int64_t>(bytes.size() - header) != elements) {
    throw DataError(path.string() + ": holds " + std::to_string(bytes.size() - header) +
                    " data bytes, the header promises " + std::to_string(elements));
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  return bytes;
}

std::unique_ptr<SampleSource> load_part(const std::filesystem::path& dir, const std::string& prefix,
                                        ImageShape& shape, int64_t& max_label) {
  std::vector<int64_t> image_sizes, label_sizes;
  const auto images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  const auto labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  std::vector<uint8_t> images = read_idx(images_path, 3, image_sizes);
  const std::vector<uint8_t> label_bytes = read_idx(labels_path, 1, label_sizes);
  if (image_sizes[0] != label_sizes[0]) {
    throw DataError(labels_path.string() + ": " + std::to_string(label_sizes[0]) + " labels for " +
                    std::to_string(image_sizes[0]) + " images in " + images_path.string());
  }
  const ImageShape part_shape{image_sizes[1], image_sizes[2], 1};
  if (shape.pixels() != 0 && part_shape != shape) {
    throw DataError(images_path.string() + ": images are " + part_shape.to_string() +
                    ", the training images are " + shape.to_string());
  }
  shape = part_shape;
  std::vector<int32_t> labels(label_bytes.begin(), label_bytes.end());
  for (const int32_t label : labels) max_label = std::max<int64_t>(max_label, label);
  return std::make_unique<InMemorySource>(shape.pixels(), std::move(images), std::move(labels));
}

}  // namespace

SourceDataset load_idx(const std::filesystem::path& dir, std::vector<std::string> class_names) {
  SourceDataset source;
  int64_t max_label = -1;
  source.train = load_part(dir, "train", source.shape, max_label);
  source.test = load_part(dir, "t10k", source.shape, max_label);
  source.classes = class_names.empty() ? max_label + 1 : static_cast<int64_t>(class_names.size());
  if (max_label >= source.classes) {
    throw DataError(dir.string() + ": label " + std::to_string(max_label) + " but only " +
                    std::to_string(source.classes) + " class names were given");
  }
  source.class_names = class_names.empty() ? numbered_class_names(source.classes) : std::move(class_names);
  return source;
}

SourceDataset load_fashion_mnist(const std::filesystem::path& dir) {
  return load_idx(dir, {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                        "Sneaker", "Bag", "Ankle boot"});
}

}  // namespace mone
