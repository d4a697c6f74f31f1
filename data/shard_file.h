// The file of a shard being written, for both storages: an HDF5 file under
// "<path>.tmp" with its `images` dataset, renamed to <path> by commit() only
// when complete and removed otherwise, so an interrupted conversion never
// leaves a shard that looks whole.
#pragma once

#include <filesystem>
#include <string>

#include "data/hdf5.h"

namespace mone {

class ShardFile {
 public:
  // Creates the temporary file (timestamps: see h5::create_file).
  ShardFile(std::filesystem::path path, bool timestamps);
  ~ShardFile();  // an uncommitted temporary file is removed
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;

  // Creates `images` of `type` over `space` with `properties`.
  void create_images(hid_t type, hid_t space, hid_t properties);
  hid_t file() const { return file_; }
  hid_t images() const { return images_; }
  const std::string& temporary() const { return temporary_; }
  // Closes (after the caller wrote everything else) and renames. Takes the
  // HDF5 lock itself.
  void commit();

 private:
  std::filesystem::path path_;
  std::string temporary_;
  h5::Handle file_;
  h5::Handle images_;
};

}  // namespace mone
