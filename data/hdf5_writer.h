// Writing HDF5 files through the C API: attributes on the root group and
// datasets at slash-separated paths (groups are created on the way). Used by
// checkpoints and check files. Built on the handles, the checked-call macro
// and the lock of data/hdf5.h: a failure throws DataError naming the file and
// what was being written, and every method holds the lock, so a checkpoint
// written while a loader thread reads shards never calls HDF5 concurrently
// with it.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5.h"

namespace mone {

class Hdf5Writer {
 public:
  // Creates (truncates) the file.
  explicit Hdf5Writer(const std::string& path);
  // Builds the file in memory (HDF5's core driver), for close_to_image():
  // `name` only names it in error messages. The caller writes the bytes, so
  // a full disk is an ordinary write error, never a failed HDF5 flush.
  struct InMemory {};
  Hdf5Writer(InMemory, const std::string& name);

  // Attributes of the root group.
  void write_attribute(const std::string& name, int64_t value);
  void write_attribute(const std::string& name, double value);
  void write_attribute(const std::string& name, const std::string& value);  // variable-length UTF-8

  // A dataset at `path` ("/params/pos_embed") holding prod(shape) values,
  // stored as the matching HDF5 type (float32, float64, int32, int64).
  template <class T>
  void write_dataset(const std::string& path, const std::vector<int64_t>& shape, const T* values);
  template <class T>
  void write_dataset(const std::string& path, const std::vector<T>& values) {
    write_dataset(path, {static_cast<int64_t>(values.size())}, values.data());
  }

  // Flushes and closes; the destructor closes too but cannot report errors.
  void close();
  // An in-memory file's bytes, then closes it.
  std::vector<unsigned char> close_to_image();
  const std::string& path() const { return path_; }

 private:
  void write_scalar_attribute(const std::string& name, hid_t type, const void* value);
  void write_raw_dataset(const std::string& path, const std::vector<int64_t>& shape, hid_t file_type,
                         hid_t memory_type, const void* values);

  std::string path_;
  h5::Handle file_;
};

}  // namespace mone
