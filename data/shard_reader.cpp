#include <algorithm>

#include "data/error.h"
#include "data/shard.h"
#include "data/shard_checks.h"

namespace mone {

namespace {

using shard_checks::dataset_type;
using shard_checks::is_integer;

// A chunk cache pays off when later reads hit cached chunks: compressed
// chunks (else each image decompresses its whole chunk) and chunks of
// several small images. A chunk of one large image is read straight into our
// buffer instead (caching it costs an extra allocation and copy per image).
h5::Handle chunk_cache_properties(hid_t dataset, const std::string& file) {
  const h5::Handle creation(MONE_H5(H5Dget_create_plist(dataset), file, "getting 'images' properties"),
                            H5Pclose);
  const bool compressed = MONE_H5(H5Pget_nfilters(creation), file, "counting 'images' filters") > 0;
  hsize_t chunk[4] = {};
  const bool chunked = H5Pget_layout(creation) == H5D_CHUNKED;  // a contiguous layout is valid too
  if (chunked) MONE_H5(H5Pget_chunk(creation, 4, chunk), file, "getting the 'images' chunk shape");
  const bool cache = compressed || (chunked && chunk[0] > 1);
  h5::Handle properties(MONE_H5(H5Pcreate(H5P_DATASET_ACCESS), file, "creating access properties"),
                        H5Pclose);
  MONE_H5(H5Pset_chunk_cache(properties, 12421, cache ? 32u << 20 : 0, 0.75), file,
          "sizing the chunk cache");
  return properties;
}

}  // namespace

ShardReader::ShardReader(const std::filesystem::path& path, const ShardExpectation& expected)
    : file_(path.string()), shape_(expected.shape) {
  const auto held = h5::lock();
  handle_ = h5::open_file(file_);
  check_attributes(expected);
  check_images(expected);
  check_labels(expected);
  if (expected.verify_checksum) check_checksum(expected);
}

ShardReader::~ShardReader() {
  const auto held = h5::lock();
  images_space_.reset();
  images_.reset();
  handle_.reset();
}

void ShardReader::check_attributes(const ShardExpectation& expected) const {
  shard_checks::check_common_attributes(handle_, file_, data_format::kVersion, expected.classes, expected.split);
  const ImageShape stored{h5::get_int_attribute(handle_, "height", file_),
                          h5::get_int_attribute(handle_, "width", file_),
                          h5::get_int_attribute(handle_, "channels", file_)};
  if (stored != expected.shape) {
    throw DataError(file_ + ": images are " + stored.to_string() + " but the manifest says " +
                    expected.shape.to_string());
  }
}

void ShardReader::check_images(const ShardExpectation& expected) {
  const std::string name = data_format::kImages;
  images_ = h5::open_dataset(handle_, name, file_);
  const h5::Handle type = dataset_type(images_, file_, name);
  if (!is_integer(type, 1, H5T_SGN_NONE)) {
    throw DataError(file_ + ": 'images' has type " + h5::describe_type(type) + ", expected uint8");
  }
  const std::vector<int64_t> dims = h5::dataset_shape(images_, file_, name);
  const std::vector<int64_t> wanted = {expected.entry.samples, expected.shape.height,
                                       expected.shape.width, expected.shape.channels};
  if (dims != wanted) {
    throw DataError(file_ + ": 'images' has shape " + h5::shape_text(dims) + ", expected " +
                    h5::shape_text(wanted) + " (samples from the manifest, H, W, C)");
  }
  samples_ = dims[0];
  const h5::Handle access = chunk_cache_properties(images_, file_);
  images_ = h5::Handle(MONE_H5(H5Dopen2(handle_, name.c_str(), access), file_,
                               "reopening dataset 'images' with a chunk cache"),
                       H5Dclose);
  images_space_ = h5::dataset_space(images_, file_, name);
}

void ShardReader::check_labels(const ShardExpectation& expected) {
  labels_ = shard_checks::read_labels(handle_, file_, samples_, expected.classes);
}

void ShardReader::check_checksum(const ShardExpectation& expected) const {
  // Read in blocks of whole chunks so a large shard never sits in memory at once.
  const int64_t block = std::max<int64_t>(1, (8 << 20) / shape_.pixels());
  std::vector<uint8_t> buffer(static_cast<size_t>(block * shape_.pixels()));
  Crc32 crc;
  for (int64_t first = 0; first < samples_; first += block) {
    const int64_t count = std::min(block, samples_ - first);
    read_images(first, count, buffer.data());
    crc.update(buffer.data(), static_cast<size_t>(count * shape_.pixels()));
  }
  crc.update_labels(labels_.data(), labels_.size());
  if (crc.value() != expected.entry.crc32) {
    throw DataError(file_ + ": checksum mismatch (CRC-32 of images and labels is " +
                    std::to_string(crc.value()) + ", the manifest says " +
                    std::to_string(expected.entry.crc32) + "); the shard is corrupt or was changed");
  }
}

void ShardReader::read_images(int64_t first, int64_t count, uint8_t* out) const {
  const auto held = h5::lock();
  const hsize_t start[4] = {static_cast<hsize_t>(first), 0, 0, 0};
  const hsize_t counts[4] = {static_cast<hsize_t>(count), static_cast<hsize_t>(shape_.height),
                             static_cast<hsize_t>(shape_.width),
                             static_cast<hsize_t>(shape_.channels)};
  MONE_H5(H5Sselect_hyperslab(images_space_, H5S_SELECT_SET, start, nullptr, counts, nullptr), file_,
          "selecting images " + std::to_string(first) + ".." + std::to_string(first + count));
  const h5::Handle memory_space(MONE_H5(H5Screate_simple(4, counts, nullptr), file_,
                                        "creating a memory dataspace"),
                                H5Sclose);
  MONE_H5(H5Dread(images_, H5T_NATIVE_UINT8, memory_space, images_space_, H5P_DEFAULT, out), file_,
          "reading images " + std::to_string(first) + ".." + std::to_string(first + count));
}

}  // namespace mone
