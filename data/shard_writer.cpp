#include <algorithm>

#include "data/error.h"
#include "data/shard.h"

namespace mone {

namespace {

// Runs before the file is created: bad arguments leave no file behind.
std::filesystem::path check_shard_arguments(std::filesystem::path path, int64_t samples, int deflate_level) {
  if (samples <= 0) throw DataError(path.string() + ": a shard needs at least one sample");
  if (deflate_level < 0 || deflate_level > 9) {
    throw DataError(path.string() + ": deflate level " + std::to_string(deflate_level) + " is outside 0..9");
  }
  return path;
}

}  // namespace

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
    : file_(check_shard_arguments(std::move(path), samples, deflate_level), timestamps),
      temporary_(file_.temporary()), shape_(shape), samples_(samples), timestamps_(timestamps) {
  labels_.reserve(static_cast<size_t>(samples));
  const auto held = h5::lock();
  h5::set_attribute(file_.file(), "version", data_format::kVersion, temporary_);
  h5::set_attribute(file_.file(), "height", shape.height, temporary_);
  h5::set_attribute(file_.file(), "width", shape.width, temporary_);
  h5::set_attribute(file_.file(), "channels", shape.channels, temporary_);
  h5::set_attribute(file_.file(), "classes", classes, temporary_);
  h5::set_attribute(file_.file(), "split", split, temporary_);

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
  file_.create_images(H5T_STD_U8LE, space, properties);
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
  const h5::Handle file_space = h5::dataset_space(file_.images(), temporary_, data_format::kImages);
  MONE_H5(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, counts, nullptr),
          temporary_, "selecting images to write");
  const h5::Handle memory_space(MONE_H5(H5Screate_simple(4, counts, nullptr), temporary_,
                                        "creating a memory dataspace"),
                                H5Sclose);
  MONE_H5(H5Dwrite(file_.images(), H5T_NATIVE_UINT8, memory_space, file_space, H5P_DEFAULT, images),
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
    h5::write_vector(file_.file(), data_format::kLabels, labels_, temporary_,
                     timestamps_ ? H5P_DEFAULT : h5::dataset_creation_properties(false, temporary_).get());
  }
  file_.commit();
  Crc32 crc = images_crc_;
  crc.update_labels(labels_.data(), labels_.size());
  return crc.value();
}

}  // namespace mone
