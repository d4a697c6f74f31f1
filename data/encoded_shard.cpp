#include "data/encoded_shard.h"

#include <algorithm>

#include "data/error.h"
#include "data/format.h"
#include "data/shard_checks.h"

namespace mone {

namespace {

constexpr const char* kEncodedStorage = "encoded";
// Small enough that a random image read touches little beyond its own bytes.
constexpr hsize_t kChunkBytes = 64 << 10;

void update_int64(Crc32& crc, const std::vector<int64_t>& values) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the checksum is defined on little-endian bytes");
  crc.update(values.data(), values.size() * sizeof(int64_t));
}

}  // namespace

EncodedShardWriter::EncodedShardWriter(std::filesystem::path path, std::string split, int64_t channels,
                                       int64_t classes)
    // No HDF5 timestamps: converting the same folder twice gives the same bytes.
    : file_(std::move(path), /*timestamps=*/false), temporary_(file_.temporary()) {
  const auto held = h5::lock();
  h5::set_attribute(file_.file(), "version", data_format::kEncodedVersion, temporary_);
  h5::set_attribute(file_.file(), "storage", std::string(kEncodedStorage), temporary_);
  h5::set_attribute(file_.file(), "channels", channels, temporary_);
  h5::set_attribute(file_.file(), "classes", classes, temporary_);
  h5::set_attribute(file_.file(), "split", split, temporary_);
  const hsize_t dims[1] = {0}, max_dims[1] = {H5S_UNLIMITED};
  const h5::Handle space(MONE_H5(H5Screate_simple(1, dims, max_dims), temporary_, "creating the images dataspace"),
                         H5Sclose);
  const h5::Handle properties = h5::dataset_creation_properties(false, temporary_);
  MONE_H5(H5Pset_chunk(properties, 1, &kChunkBytes), temporary_, "setting the image chunks");
  file_.create_images(H5T_STD_U8LE, space, properties);
}

void EncodedShardWriter::append(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int32_t label) {
  const auto held = h5::lock();
  const hsize_t start[1] = {static_cast<hsize_t>(offsets_.back())};
  const hsize_t count[1] = {encoded.size()};
  const hsize_t extent[1] = {start[0] + count[0]};
  MONE_H5(H5Dset_extent(file_.images(), extent), temporary_, "extending 'images'");
  const h5::Handle file_space = h5::dataset_space(file_.images(), temporary_, data_format::kImages);
  MONE_H5(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr), temporary_,
          "selecting image bytes to write");
  const h5::Handle memory_space(MONE_H5(H5Screate_simple(1, count, nullptr), temporary_, "creating a memory dataspace"),
                                H5Sclose);
  MONE_H5(H5Dwrite(file_.images(), H5T_NATIVE_UINT8, memory_space, file_space, H5P_DEFAULT, encoded.data()), temporary_,
          "writing image bytes");
  images_crc_.update(encoded.data(), encoded.size());
  offsets_.push_back(static_cast<int64_t>(extent[0]));
  heights_.push_back(height);
  widths_.push_back(width);
  labels_.push_back(label);
}

uint32_t EncodedShardWriter::finish() {
  if (labels_.empty()) throw DataError(temporary_ + ": a shard needs at least one sample");
  {
    const auto held = h5::lock();
    const h5::Handle untimed = h5::dataset_creation_properties(false, temporary_);
    h5::write_vector(file_.file(), data_format::kLabels, labels_, temporary_, untimed);
    h5::write_vector(file_.file(), data_format::kOffsets, offsets_, temporary_, untimed);
    h5::write_vector(file_.file(), data_format::kHeights, heights_, temporary_, untimed);
    h5::write_vector(file_.file(), data_format::kWidths, widths_, temporary_, untimed);
  }
  file_.commit();
  Crc32 crc = images_crc_;
  crc.update_labels(labels_.data(), labels_.size());
  update_int64(crc, offsets_);
  update_int64(crc, heights_);
  update_int64(crc, widths_);
  return crc.value();
}

EncodedShardReader::EncodedShardReader(const std::filesystem::path& path, const ShardExpectation& expected)
    : file_(path.string()) {
  const auto held = h5::lock();
  handle_ = h5::open_file(file_);
  shard_checks::check_common_attributes(handle_, file_, data_format::kEncodedVersion, expected.classes,
                                        expected.split);
  const std::string storage = h5::get_string_attribute(handle_, "storage", file_);
  if (storage != kEncodedStorage) {
    throw DataError(file_ + ": storage '" + storage + "', expected '" + kEncodedStorage + "'");
  }
  const int64_t channels = h5::get_int_attribute(handle_, "channels", file_);
  if (channels != expected.shape.channels) {
    throw DataError(file_ + ": has " + std::to_string(channels) + " channels but the manifest says " +
                    std::to_string(expected.shape.channels));
  }
  check_images(expected);
  labels_ = shard_checks::read_labels(handle_, file_, expected.entry.samples, expected.classes);
  if (expected.verify_checksum) check_checksum(expected);
}

EncodedShardReader::~EncodedShardReader() {
  const auto held = h5::lock();
  images_space_.reset();
  images_.reset();
  handle_.reset();
}

void EncodedShardReader::check_images(const ShardExpectation& expected) {
  const int64_t samples = expected.entry.samples;
  images_ = h5::open_dataset(handle_, data_format::kImages, file_);
  const h5::Handle type = shard_checks::dataset_type(images_, file_, data_format::kImages);
  if (!shard_checks::is_integer(type, 1, H5T_SGN_NONE)) {
    throw DataError(file_ + ": 'images' has type " + h5::describe_type(type) + ", expected uint8");
  }
  const std::vector<int64_t> dims = h5::dataset_shape(images_, file_, data_format::kImages);
  if (dims.size() != 1) {
    throw DataError(file_ + ": 'images' has shape " + h5::shape_text(dims) +
                    ", expected [bytes] (format version 2 stores encoded files)");
  }
  images_space_ = h5::dataset_space(images_, file_, data_format::kImages);
  offsets_ = h5::read_vector<int64_t>(handle_, data_format::kOffsets, file_);
  heights_ = h5::read_vector<int64_t>(handle_, data_format::kHeights, file_);
  widths_ = h5::read_vector<int64_t>(handle_, data_format::kWidths, file_);
  if (static_cast<int64_t>(offsets_.size()) != samples + 1 || static_cast<int64_t>(heights_.size()) != samples ||
      static_cast<int64_t>(widths_.size()) != samples) {
    throw DataError(file_ + ": 'offsets', 'heights', 'widths' must have " + std::to_string(samples + 1) + ", " +
                    std::to_string(samples) + ", " + std::to_string(samples) +
                    " entries (samples from the manifest)");
  }
  if (offsets_.front() != 0 || offsets_.back() != dims[0] || !std::is_sorted(offsets_.begin(), offsets_.end())) {
    throw DataError(file_ + ": 'offsets' must rise from 0 to the " + std::to_string(dims[0]) +
                    " bytes of 'images'");
  }
  for (int64_t i = 0; i < samples; ++i) {
    if (heights_[static_cast<size_t>(i)] <= 0 || widths_[static_cast<size_t>(i)] <= 0) {
      throw DataError(file_ + ": image " + std::to_string(i) + " has a non-positive height or width");
    }
  }
}

void EncodedShardReader::check_checksum(const ShardExpectation& expected) const {
  constexpr int64_t kBlock = 8 << 20;  // never the whole shard in memory
  std::vector<uint8_t> buffer(static_cast<size_t>(kBlock));
  Crc32 crc;
  for (int64_t first = 0; first < offsets_.back(); first += kBlock) {
    const int64_t count = std::min(kBlock, offsets_.back() - first);
    read_bytes(first, count, buffer.data());
    crc.update(buffer.data(), static_cast<size_t>(count));
  }
  crc.update_labels(labels_.data(), labels_.size());
  update_int64(crc, offsets_);
  update_int64(crc, heights_);
  update_int64(crc, widths_);
  if (crc.value() != expected.entry.crc32) {
    throw DataError(file_ + ": checksum mismatch (CRC-32 of images, labels, offsets, heights and widths is " +
                    std::to_string(crc.value()) + ", the manifest says " + std::to_string(expected.entry.crc32) +
                    "); the shard is corrupt or was changed");
  }
}

void EncodedShardReader::read_bytes(int64_t first, int64_t count, uint8_t* out) const {
  const auto held = h5::lock();
  const hsize_t start[1] = {static_cast<hsize_t>(first)}, counts[1] = {static_cast<hsize_t>(count)};
  MONE_H5(H5Sselect_hyperslab(images_space_, H5S_SELECT_SET, start, nullptr, counts, nullptr), file_,
          "selecting image bytes");
  const h5::Handle memory_space(MONE_H5(H5Screate_simple(1, counts, nullptr), file_, "creating a memory dataspace"),
                                H5Sclose);
  MONE_H5(H5Dread(images_, H5T_NATIVE_UINT8, memory_space, images_space_, H5P_DEFAULT, out), file_,
          "reading image bytes " + std::to_string(first) + ".." + std::to_string(first + count));
}

void EncodedShardReader::read(int64_t index, std::vector<uint8_t>& encoded) const {
  const int64_t first = offsets_[static_cast<size_t>(index)];
  const int64_t count = offsets_[static_cast<size_t>(index) + 1] - first;
  encoded.resize(static_cast<size_t>(count));
  if (count > 0) read_bytes(first, count, encoded.data());
}

}  // namespace mone
