// Every kind of bad dataset gives a DataError naming the file and the problem.
#include <gtest/gtest.h>

#include "data/error.h"
#include "data/hdf5.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

class BadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.shape = {8, 8, 1};
    options_.classes = 4;
    options_.train_count = 40;
    options_.test_count = 0;
    testing::write_synthetic(dir_.path(), options_, 20);
    shard_ = (dir_.path() / "train-00001.h5").string();
    ASSERT_EQ(testing::loader_error(dir_.path(), "train"), "");  // intact before we break it
  }

  // Replaces dataset `name` of the second shard by one of another type/shape.
  void replace_dataset(const char* name, hid_t type, std::vector<hsize_t> dims) {
    const auto held = h5::lock();
    const h5::Handle file(H5Fopen(shard_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    ASSERT_GE(file.get(), 0);
    ASSERT_GE(H5Ldelete(file, name, H5P_DEFAULT), 0);
    const h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    const h5::Handle dataset(H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    ASSERT_GE(dataset.get(), 0);
  }

  // Overwrites one element of a dataset of the second shard.
  template <typename T>
  void poke(const char* name, hid_t memory_type, std::vector<hsize_t> at, T value) {
    const auto held = h5::lock();
    const h5::Handle file(H5Fopen(shard_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    const h5::Handle dataset(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
    const h5::Handle space(H5Dget_space(dataset), H5Sclose);
    std::vector<hsize_t> ones(at.size(), 1);
    ASSERT_GE(H5Sselect_hyperslab(space, H5S_SELECT_SET, at.data(), nullptr, ones.data(), nullptr), 0);
    const h5::Handle memory(H5Screate_simple(static_cast<int>(ones.size()), ones.data(), nullptr), H5Sclose);
    ASSERT_GE(H5Dwrite(dataset, memory_type, memory, space, H5P_DEFAULT, &value), 0);
  }

  template <typename T>
  T peek(const char* name, hid_t memory_type, std::vector<hsize_t> at) {
    const auto held = h5::lock();
    const h5::Handle file(H5Fopen(shard_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    const h5::Handle dataset(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
    const h5::Handle space(H5Dget_space(dataset), H5Sclose);
    std::vector<hsize_t> ones(at.size(), 1);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, at.data(), nullptr, ones.data(), nullptr);
    const h5::Handle memory(H5Screate_simple(static_cast<int>(ones.size()), ones.data(), nullptr), H5Sclose);
    T value{};
    EXPECT_GE(H5Dread(dataset, memory_type, memory, space, H5P_DEFAULT, &value), 0);
    return value;
  }

  std::string error() { return testing::loader_error(dir_.path(), "train"); }

  testing::TempDir dir_;
  SyntheticOptions options_;
  std::string shard_;
};

TEST_F(BadFiles, MissingShard) {
  std::filesystem::remove(shard_);
  EXPECT_CONTAINS(error(), shard_ + ": file does not exist");
}

TEST_F(BadFiles, TruncatedShard) {
  std::filesystem::resize_file(shard_, std::filesystem::file_size(shard_) / 2);
  EXPECT_CONTAINS(error(), shard_ + ": cannot be opened, the file is truncated or damaged");
}

TEST_F(BadFiles, NotAnHdf5File) {
  std::filesystem::resize_file(shard_, 0);
  EXPECT_CONTAINS(error(), shard_ + ": not an HDF5 file");
}

TEST_F(BadFiles, WrongImageType) {
  replace_dataset("images", H5T_IEEE_F32LE, {20, 8, 8, 1});
  EXPECT_CONTAINS(error(), shard_ + ": 'images' has type float32, expected uint8");
}

TEST_F(BadFiles, WrongImageShape) {
  replace_dataset("images", H5T_STD_U8LE, {20, 8, 8});
  EXPECT_CONTAINS(error(), shard_ + ": 'images' has shape [20, 8, 8], expected [20, 8, 8, 1]");
}

TEST_F(BadFiles, ShardHoldsFewerSamplesThanTheManifestSays) {
  replace_dataset("images", H5T_STD_U8LE, {19, 8, 8, 1});
  EXPECT_CONTAINS(error(), shard_ + ": 'images' has shape [19, 8, 8, 1], expected [20, 8, 8, 1]");
}

TEST_F(BadFiles, WrongLabelType) {
  replace_dataset("labels", H5T_STD_I64LE, {20});
  EXPECT_CONTAINS(error(), shard_ + ": 'labels' has type int64, expected int32");
}

TEST_F(BadFiles, ImageSizeNotMatchingTheManifest) {
  // A shard of a 9x9 dataset in place of the 8x8 one.
  testing::TempDir other;
  SyntheticOptions options = options_;
  options.shape = {9, 9, 1};
  testing::write_synthetic(other.path(), options, 20);
  std::filesystem::copy_file(other.path() / "train-00001.h5", shard_,
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_CONTAINS(error(), shard_ + ": images are 9x9x1 but the manifest says 8x8x1");
}

TEST_F(BadFiles, LabelOutsideTheClasses) {
  poke<int32_t>("labels", H5T_NATIVE_INT32, {7}, 4);
  EXPECT_CONTAINS(error(), shard_ + ": label 4 of sample 7 is outside [0, 4)");
  poke<int32_t>("labels", H5T_NATIVE_INT32, {7}, -1);
  EXPECT_CONTAINS(error(), shard_ + ": label -1 of sample 7 is outside [0, 4)");
}

TEST_F(BadFiles, ChecksumMismatch) {
  const uint8_t pixel = peek<uint8_t>("images", H5T_NATIVE_UINT8, {3, 2, 5, 0});
  poke<uint8_t>("images", H5T_NATIVE_UINT8, {3, 2, 5, 0}, static_cast<uint8_t>(pixel ^ 0xff));
  EXPECT_CONTAINS(error(), shard_ + ": checksum mismatch");
}

TEST_F(BadFiles, MissingSplitNamesTheAvailableOnes) {
  EXPECT_CONTAINS(testing::loader_error(dir_.path(), "val"), "no split 'val' (available: train)");
}

TEST(MissingDataset, HintGivesTheConvertCommand) {
  try {
    Dataset::open("/nonexistent/fmnist", "train");
    FAIL() << "no error";
  } catch (const DataError& error) {
    EXPECT_CONTAINS(std::string(error.what()), "no dataset at /nonexistent/fmnist");
    EXPECT_CONTAINS(std::string(error.what()), "mone-data --out /nonexistent/fmnist");
  }
}

TEST(LoaderOptions, BadValuesNameTheOption) {
  testing::TempDir dir;
  LoaderOptions options;
  options.dir = dir.path();
  options.global_batch = 10;
  options.world = 3;
  try {
    Loader loader(options);
    FAIL() << "no error";
  } catch (const DataError& error) {
    EXPECT_CONTAINS(std::string(error.what()), "global_batch = 10 must be a multiple of world = 3");
  }
}

}  // namespace
}  // namespace mone
