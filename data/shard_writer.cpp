#include <algorithm>
#include <system_error>

#include "data/error.h"
#include "data/shard.h"

namespace mone {

std::vector<int64_t> image_chunk_dims(const ImageShape& shape, int64_t samples) {
  constexpr int64_t kTarget = 64 << 10;  // big enough to amortise chunk lookups
  constexpr int64_t kMax = 1 << 20;      // small enough that a random read stays cheap
  const int64_t image_bytes = shape.pixels();
  if (image_bytes > kMax) {
    const int64_t rows = std::max<int64_t>(1, kMax / (shape.width * shape.channels));
    return {1, rows, shape.width, shape.channels};
  }
  int64_t images = (kTarget + image_bytes - 1) / image_bytes;
  images = std::min({images, kMax / image_bytes, std::max<int64_t>(samples, 1)});
  return {std::max<int64_t>(images, 1), shape.height, shape.width, shape.channels};
}

ShardWriter::ShardWriter(std::filesystem::path path, std::string split, ImageShape shape,
                         int64_t classes, int64_t samples, int deflate_level, bool timestamps)
    : path_(std::move(path)), temporary_(path_.string() + ".tmp"), shape_(shape), samples_(samples),
      timestamps_(timestamps) {
  if (samples <= 0) throw DataError(path_.string() + ": a shard needs at least one sample");
  if (deflate_level < 0 || deflate_level > 9) {
    throw DataError(path_.string() + ": deflate level " + std::to_string(deflate_level) +
                    " is outside 0..9");
  }
  labels_.reserve(static_cast<size_t>(samples));
  const auto held = h5::lock();
  file_ = h5::create_file(temporary_, timestamps);
  h5::set_attribute(file_, "version", data_format::kVersion, temporary_);
  h5::set_attribute(file_, "height", shape.height, temporary_);
  h5::set_attribute(file_, "width", shape.width, temporary_);
  h5::set_attribute(file_, "channels", shape.channels, temporary_);
  h5::set_attribute(file_, "classes", classes, temporary_);
  h5::set_attribute(file_, "split", split, temporary_);

  const hsize_t dims[4] = {static_cast<hsize_t>(samples), static_cast<hsize_t>(shape.height),
                           static_cast<hsize_t>(shape.width), static_cast<hsize_t>(shape.channels)};
  const h5::Handle space(MONE_H5(H5Screate_simple(4, dims, nullptr), temporary_,
                                 "creating the images dataspace"),
                         H5Sclose);
  const h5::Handle properties = h5::dataset_creation_properties(timestamps, temporary_);
  const std::vector<int64_t> chunk64 = image_chunk_dims(shape, samples);
  const std::vector<hsize_t> chunk(chunk64.begin(), chunk64.end());
  MONE_H5(H5Pset_chunk(properties, 4, chunk.data()), temporary_, "setting the image chunks");
  if (deflate_level > 0) {
    MONE_H5(H5Pset_deflate(properties, static_cast<unsigned>(deflate_level)), temporary_,
            "enabling deflate");
  }
  images_ = h5::Handle(MONE_H5(H5Dcreate2(file_, data_format::kImages, H5T_STD_U8LE, space,
                                          H5P_DEFAULT, properties, H5P_DEFAULT),
                               temporary_, "creating dataset 'images'"),
                       H5Dclose);
}

ShardWriter::~ShardWriter() {
  const auto held = h5::lock();
  images_.reset();
  file_.reset();
  std::error_code ignored;  // nothing to remove once finish() renamed it
  std::filesystem::remove(temporary_, ignored);
}

void ShardWriter::append(const uint8_t* images, const int32_t* labels, int64_t count) {
  if (written_ + count > samples_) {
    throw DataError(temporary_ + ": more samples appended than the " + std::to_string(samples_) +
                    " declared");
  }
  const auto held = h5::lock();
  const hsize_t start[4] = {static_cast<hsize_t>(written_), 0, 0, 0};
  const hsize_t counts[4] = {static_cast<hsize_t>(count), static_cast<hsize_t>(shape_.height),
                             static_cast<hsize_t>(shape_.width),
                             static_cast<hsize_t>(shape_.channels)};
  const h5::Handle file_space = h5::dataset_space(images_, temporary_, data_format::kImages);
  MONE_H5(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, counts, nullptr),
          temporary_, "selecting images to write");
  const h5::Handle memory_space(MONE_H5(H5Screate_simple(4, counts, nullptr), temporary_,
                                        "creating a memory dataspace"),
                                H5Sclose);
  MONE_H5(H5Dwrite(images_, H5T_NATIVE_UINT8, memory_space, file_space, H5P_DEFAULT, images),
          temporary_, "writing images");
  images_crc_.update(images, static_cast<size_t>(count * shape_.pixels()));
  labels_.insert(labels_.end(), labels, labels + count);
  written_ += count;
}

uint32_t ShardWriter::finish() {
  if (written_ != samples_) {
    throw DataError(temporary_ + ": finished with " + std::to_string(written_) + " of " +
                    std::to_string(samples_) + " samples");
  }
  {
    const auto held = h5::lock();
    h5::write_vector(file_, data_format::kLabels, labels_, temporary_,
                     timestamps_ ? H5P_DEFAULT : h5::dataset_creation_properties(false, temporary_).get());
    images_.reset();
    MONE_H5(H5Fflush(file_, H5F_SCOPE_LOCAL), temporary_, "flushing the shard");
    file_.reset();
  }
  // Only now does the shard get its real name: an interrupted conversion
  // leaves at most a *.tmp file, never a shard that looks whole.
  std::filesystem::rename(temporary_, path_);
  Crc32 crc = images_crc_;
  crc.update_labels(labels_.data(), labels_.size());
  return crc.value();
}

}  // namespace mone
