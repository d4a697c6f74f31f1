// The on-disk format's fixed names and numbers (see docs/data-format.md).
#pragma once

#include <cstdint>
#include <string>

namespace mone::data_format {

// Bumped on any incompatible change; readers reject other versions.
// Version 1: raw uint8 [n, H, W, C] images. Version 2: encoded images (JPEG
// or PNG bytes, one variable-length byte array per shard).
constexpr int64_t kVersion = 1;
constexpr int64_t kEncodedVersion = 2;
constexpr const char* kManifestFile = "manifest.h5";
constexpr const char* kImages = "images";
constexpr const char* kLabels = "labels";
// Version 2: image i is images[offsets[i] .. offsets[i + 1]), heights[i] x widths[i].
constexpr const char* kOffsets = "offsets";
constexpr const char* kHeights = "heights";
constexpr const char* kWidths = "widths";

// "train-00003.h5": shards sort in order and say which split they hold.
std::string shard_file_name(const std::string& split, int64_t index);

}  // namespace mone::data_format

namespace mone {

struct ImageShape {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;

  int64_t pixels() const { return height * width * channels; }
  std::string to_string() const;  // "28x28x1"
  bool operator==(const ImageShape& other) const {
    return height == other.height && width == other.width && channels == other.channels;
  }
  bool operator!=(const ImageShape& other) const { return !(*this == other); }
};

}  // namespace mone
