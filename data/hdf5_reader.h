// Reading what Hdf5Writer writes: root attributes and float32 datasets at
// slash-separated paths. Every HDF5 call is checked (a DataError names the
// file and what was being read), and every method holds the HDF5 lock
// (data/hdf5.h). Used to load checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5.h"

namespace mone {

class Hdf5Reader {
 public:
  // Opens read-only; a missing, truncated or non-HDF5 file throws DataError saying which.
  explicit Hdf5Reader(const std::string& path);

  bool has_attribute(const std::string& name) const;
  int64_t read_int_attribute(const std::string& name) const;
  double read_double_attribute(const std::string& name) const;
  std::string read_string_attribute(const std::string& name) const;

  bool has_dataset(const std::string& path) const;
  std::vector<int64_t> dataset_shape(const std::string& path) const;
  // Reads prod(shape) floats into `out`; the stored shape must equal `shape`.
  void read_dataset(const std::string& path, const std::vector<int64_t>& shape, float* out) const;

  const std::string& path() const { return path_; }

 private:
  h5::Handle open_attribute(const std::string& name) const;

  std::string path_;
  h5::Handle file_;
};

}  // namespace mone
