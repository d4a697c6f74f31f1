// One shard of format version 2: the images' encoded files (JPEG, or PNG)
// concatenated in `images` (uint8 [total bytes]), image i at bytes
// [offsets[i], offsets[i + 1]) and of heights[i] x widths[i] pixels, with
// `labels` int32 [n]. Written under a temporary name and renamed when
// complete, like a raw shard; the reader checks it against the manifest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/checksum.h"
#include "data/hdf5.h"
#include "data/shard.h"
#include "data/shard_file.h"

namespace mone {

class EncodedShardWriter {
 public:
  EncodedShardWriter(std::filesystem::path path, std::string split, int64_t channels, int64_t classes);
  // An unfinished shard's temporary file is removed (ShardFile).
  EncodedShardWriter(const EncodedShardWriter&) = delete;
  EncodedShardWriter& operator=(const EncodedShardWriter&) = delete;

  void append(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int32_t label);
  int64_t samples() const { return static_cast<int64_t>(labels_.size()); }
  // Returns the shard's CRC-32: the image bytes, then the labels as
  // little-endian int32, then offsets, heights and widths as little-endian int64.
  uint32_t finish();

 private:
  ShardFile file_;
  const std::string& temporary_;  // file_'s temporary name, for messages
  std::vector<int32_t> labels_;
  std::vector<int64_t> offsets_{0};
  std::vector<int64_t> heights_;
  std::vector<int64_t> widths_;
  Crc32 images_crc_;
};

class EncodedShardReader {
 public:
  // Opens and validates (attributes, types, shapes, offsets, labels, then
  // the checksum); throws DataError naming the file.
  EncodedShardReader(const std::filesystem::path& path, const ShardExpectation& expected);
  ~EncodedShardReader();  // closes under the HDF5 lock
  EncodedShardReader(const EncodedShardReader&) = delete;
  EncodedShardReader& operator=(const EncodedShardReader&) = delete;

  int64_t samples() const { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int32_t>& labels() const { return labels_; }
  // Image `index`'s encoded bytes.
  void read(int64_t index, std::vector<uint8_t>& encoded) const;
  // The decoded size of image `index`, known before decoding it.
  int64_t height(int64_t index) const { return heights_[static_cast<size_t>(index)]; }
  int64_t width(int64_t index) const { return widths_[static_cast<size_t>(index)]; }
  const std::string& file() const { return file_; }

 private:
  void check_images(const ShardExpectation& expected);
  void check_checksum(const ShardExpectation& expected) const;
  void read_bytes(int64_t first, int64_t count, uint8_t* out) const;

  std::string file_;
  std::vector<int32_t> labels_;
  std::vector<int64_t> offsets_;
  std::vector<int64_t> heights_;
  std::vector<int64_t> widths_;
  h5::Handle handle_;
  h5::Handle images_;
  h5::Handle images_space_;
};

}  // namespace mone
