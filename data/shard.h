// One shard file: `images` uint8 [n, H, W, C], `labels` int32 [n] and the
// attributes that say what they are. ShardWriter creates one under a
// temporary name and renames it only when complete; ShardReader opens one
// and checks it against the manifest before any sample is used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/checksum.h"
#include "data/dataset.h"
#include "data/format.h"
#include "data/hdf5.h"
#include "data/shard_file.h"

namespace mone {

class ShardWriter {
 public:
  // deflate_level 0 stores chunks uncompressed, 1-9 compresses them.
  // timestamps = false leaves out HDF5's object times: byte-identical files
  // for the same content (image folders); the other converters keep them.
  ShardWriter(std::filesystem::path path, std::string split, ImageShape shape, int64_t classes,
              int64_t samples, int deflate_level, bool timestamps = true);
  // An unfinished shard's temporary file is removed (ShardFile).
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void append(const uint8_t* images, const int32_t* labels, int64_t count);
  // Requires exactly `samples` appended; returns the shard's CRC-32.
  uint32_t finish();

 private:
  ShardFile file_;
  const std::string& temporary_;  // file_'s temporary name, for messages
  ImageShape shape_;
  int64_t samples_;
  int64_t written_ = 0;
  bool timestamps_;
  std::vector<int32_t> labels_;
  Crc32 images_crc_;
};

// Images per chunk (and rows, for images over the 1 MiB chunk limit): chosen
// so a chunk holds a few images and stays within 10 KiB..1 MiB.
std::vector<int64_t> image_chunk_dims(const ImageShape& shape, int64_t samples);

struct ShardExpectation {
  std::string split;
  ImageShape shape;
  int64_t classes = 0;
  ShardEntry entry;
  bool verify_checksum = true;
};

class ShardReader {
 public:
  // Opens and validates: structure, types, shapes, attributes against the
  // manifest, label range, then the checksum. Throws DataError naming the file.
  ShardReader(const std::filesystem::path& path, const ShardExpectation& expected);
  ~ShardReader();  // closes under the HDF5 lock
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  int64_t samples() const { return samples_; }
  const std::vector<int32_t>& labels() const { return labels_; }
  // Copies images [first, first + count) into `out` (count * H*W*C bytes).
  void read_images(int64_t first, int64_t count, uint8_t* out) const;

 private:
  void check_attributes(const ShardExpectation& expected) const;
  void check_images(const ShardExpectation& expected);
  void check_labels(const ShardExpectation& expected);
  void check_checksum(const ShardExpectation& expected) const;

  std::string file_;
  ImageShape shape_;
  int64_t samples_ = 0;
  std::vector<int32_t> labels_;
  h5::Handle handle_;
  h5::Handle images_;
  h5::Handle images_space_;
};

}  // namespace mone
