#include "data/shard_file.h"

#include <system_error>

#include "data/format.h"

namespace mone {

ShardFile::ShardFile(std::filesystem::path path, bool timestamps)
    : path_(std::move(path)), temporary_(path_.string() + ".tmp") {
  const auto held = h5::lock();
  file_ = h5::create_file(temporary_, timestamps);
}

ShardFile::~ShardFile() {
  const auto held = h5::lock();
  images_.reset();
  file_.reset();
  std::error_code ignored;  // nothing to remove once commit() renamed it
  std::filesystem::remove(temporary_, ignored);
}

void ShardFile::create_images(hid_t type, hid_t space, hid_t properties) {
  const auto held = h5::lock();
  images_ = h5::Handle(MONE_H5(H5Dcreate2(file_, data_format::kImages, type, space, H5P_DEFAULT, properties,
                                          H5P_DEFAULT),
                               temporary_, "creating dataset 'images'"),
                       H5Dclose);
}

void ShardFile::commit() {
  {
    const auto held = h5::lock();
    images_.reset();
    MONE_H5(H5Fflush(file_, H5F_SCOPE_LOCAL), temporary_, "flushing the shard");
    file_.reset();
  }
  // Only now does the shard get its real name.
  std::filesystem::rename(temporary_, path_);
}

}  // namespace mone
