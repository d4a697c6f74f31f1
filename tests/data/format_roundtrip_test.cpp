// Write then read back every field of the format: manifest, shard
// attributes, images, labels, checksums, statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "data/checksum.h"
#include "data/error.h"
#include "data/hdf5.h"
#include "data/shard.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

TEST(Format, RoundTripOfEveryField) {
  testing::TempDir dir;
  SyntheticOptions options;
  options.shape = {5, 7, 3};
  options.classes = 4;
  options.train_count = 23;
  options.test_count = 9;
  options.seed = 17;
  const Manifest written = testing::write_synthetic(dir.path(), options, 10, 3);
  const Manifest read = read_manifest(dir.path());

  EXPECT_EQ(read.shape, (ImageShape{5, 7, 3}));
  EXPECT_EQ(read.classes, 4);
  EXPECT_EQ(read.class_names, (std::vector<std::string>{"class0", "class1", "class2", "class3"}));
  EXPECT_EQ(read.mean, written.mean);
  EXPECT_EQ(read.std, written.std);
  ASSERT_EQ(read.splits.size(), 3u);
  const std::vector<int64_t> expected_counts_train{10, 10}, expected_counts_val{3}, expected_counts_test{9};
  const std::map<std::string, std::vector<int64_t>> counts{
      {"train", expected_counts_train}, {"val", expected_counts_val}, {"test", expected_counts_test}};

  // The source samples each split should hold, in order.
  const SourceDataset source = make_synthetic(options);
  const std::vector<bool> in_validation = validation_mask(23, 3, 17);
  std::map<std::string, std::vector<int64_t>> source_index;
  for (int64_t i = 0; i < 23; ++i) source_index[in_validation[i] ? "val" : "train"].push_back(i);
  for (int64_t i = 0; i < 9; ++i) source_index["test"].push_back(i);

  // Statistics from the training samples, independently.
  std::vector<double> sum(3, 0), squares(3, 0);
  const int64_t pixels = options.shape.pixels();
  std::vector<uint8_t> image(pixels);
  for (const int64_t i : source_index["train"]) {
    source.train->read(i, image.data());
    for (int64_t k = 0; k < pixels; ++k) {
      sum[k % 3] += image[k] / 255.0;
      squares[k % 3] += (image[k] / 255.0) * (image[k] / 255.0);
    }
  }
  for (int c = 0; c < 3; ++c) {
    const double n = 20.0 * 5 * 7, mean = sum[c] / n;
    EXPECT_NEAR(read.mean[c], mean, 1e-12);
    EXPECT_NEAR(read.std[c], std::sqrt(squares[c] / n - mean * mean), 1e-9);
  }

  for (const auto& [split, shards] : read.splits) {
    ASSERT_EQ(shards.size(), counts.at(split).size()) << split;
    const SampleSource& part = split == "test" ? *source.test : *source.train;
    int64_t next = 0;
    for (size_t s = 0; s < shards.size(); ++s) {
      const ShardEntry& entry = shards[s];
      EXPECT_EQ(entry.file, split + "-0000" + std::to_string(s) + ".h5");
      EXPECT_EQ(entry.samples, counts.at(split)[s]);
      ShardReader reader(dir.path() / entry.file, {split, read.shape, read.classes, entry, true});
      std::vector<uint8_t> stored(static_cast<size_t>(entry.samples * pixels));
      reader.read_images(0, entry.samples, stored.data());
      Crc32 crc;
      crc.update(stored.data(), stored.size());
      crc.update_labels(reader.labels().data(), reader.labels().size());
      EXPECT_EQ(crc.value(), entry.crc32);
      for (int64_t j = 0; j < entry.samples; ++j, ++next) {
        const int32_t label = part.read(source_index[split][next], image.data());
        EXPECT_EQ(reader.labels()[j], label) << split << " sample " << next;
        EXPECT_TRUE(std::equal(image.begin(), image.end(), stored.begin() + j * pixels))
            << split << " sample " << next;
      }
      // Shard attributes, read directly.
      const auto held = h5::lock();
      const std::string path = (dir.path() / entry.file).string();
      const h5::Handle file = h5::open_file(path);
      EXPECT_EQ(h5::get_int_attribute(file, "version", path), 1);
      EXPECT_EQ(h5::get_int_attribute(file, "height", path), 5);
      EXPECT_EQ(h5::get_int_attribute(file, "width", path), 7);
      EXPECT_EQ(h5::get_int_attribute(file, "channels", path), 3);
      EXPECT_EQ(h5::get_int_attribute(file, "classes", path), 4);
      EXPECT_EQ(h5::get_string_attribute(file, "split", path), split);
    }
    EXPECT_EQ(next, static_cast<int64_t>(source_index[split].size()));
  }
  // No temporary file survives a finished conversion.
  for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_NE(file.path().extension(), ".tmp") << file.path();
  }
}

TEST(Format, ChunksHoldAFewImagesWithin10KiBAnd1MiB) {
  for (const ImageShape shape : {ImageShape{28, 28, 1}, ImageShape{32, 32, 3}, ImageShape{224, 224, 3}}) {
    const std::vector<int64_t> chunk = image_chunk_dims(shape, 10000);
    const int64_t bytes = chunk[0] * chunk[1] * chunk[2] * chunk[3];
    EXPECT_GE(bytes, 10 << 10) << shape.to_string();
    EXPECT_LE(bytes, 1 << 20) << shape.to_string();
    EXPECT_EQ(chunk[1], shape.height);
  }
  // An image over 1 MiB is split by rows.
  const std::vector<int64_t> big = image_chunk_dims({1024, 1024, 3}, 10);
  EXPECT_EQ(big[0], 1);
  EXPECT_LE(big[0] * big[1] * big[2] * big[3], 1 << 20);
}

TEST(Format, UnfinishedShardLeavesNoFileBehind) {
  testing::TempDir dir;
  const std::vector<uint8_t> images(4 * 4, 1);
  const std::vector<int32_t> labels{0, 1};
  {
    ShardWriter writer(dir.path() / "train-00000.h5", "train", {2, 2, 1}, 2, 4, 0);
    writer.append(images.data(), labels.data(), 2);
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "train-00000.h5.tmp"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "train-00000.h5"));
    EXPECT_THROW(writer.finish(), DataError);  // 2 of 4 samples: not complete
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Format, DeflatedShardsReadBackTheSame) {
  testing::TempDir plain, deflated;
  SyntheticOptions options;
  options.train_count = 50;
  options.test_count = 0;
  testing::write_synthetic(plain.path(), options, 50);
  ConvertOptions convert_options;
  convert_options.out = deflated.path();
  convert_options.shard_size = 50;
  convert_options.deflate_level = 6;
  convert(make_synthetic(options), convert_options);
  EXPECT_EQ(read_manifest(plain.path()).splits.at("train")[0].crc32,
            read_manifest(deflated.path()).splits.at("train")[0].crc32);
  EXPECT_EQ(testing::loader_error(deflated.path(), "train"), "");
}

}  // namespace
}  // namespace mone
