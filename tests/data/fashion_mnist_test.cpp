// The built-in default conversion: Fashion-MNIST from the Debian package,
// checked byte for byte against the IDX files read independently here.
#include <gtest/gtest.h>
#include <zlib.h>

#include "data/shard.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

constexpr int64_t kValidation = 5000;
const std::filesystem::path kSourceDir = kFashionMnistDir;

// The IDX payload after a header of 4 + 4 * dimensions bytes.
std::vector<uint8_t> idx_payload(const std::string& name, int dimensions) {
  gzFile file = gzopen((kSourceDir / name).c_str(), "rb");
  EXPECT_NE(file, nullptr) << name;
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  for (int got; (got = gzread(file, buffer, sizeof buffer)) > 0;) bytes.insert(bytes.end(), buffer, buffer + got);
  gzclose(file);
  bytes.erase(bytes.begin(), bytes.begin() + 4 + 4 * dimensions);
  return bytes;
}

class FashionMnist : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kSourceDir / "train-images-idx3-ubyte.gz")) return;
    dir_ = new testing::TempDir();
    ConvertOptions options;
    options.out = dir_->path();
    options.shard_size = 20000;
    options.validation_count = kValidation;
    options.seed = 1;
    convert(load_fashion_mnist(), options);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }

  // The first `count` images and labels of a split, as stored.
  static void read_split_start(const std::string& split, int64_t count, std::vector<uint8_t>& images,
                               std::vector<int32_t>& labels) {
    const Dataset dataset = Dataset::open(dir_->path(), split);
    const ShardEntry& entry = dataset.shards.front();
    ShardReader reader(dir_->path() / entry.file, {split, dataset.shape, dataset.classes, entry, true});
    images.resize(static_cast<size_t>(count * 784));
    reader.read_images(0, count, images.data());
    labels.assign(reader.labels().begin(), reader.labels().begin() + count);
  }

  static testing::TempDir* dir_;
};

testing::TempDir* FashionMnist::dir_ = nullptr;

TEST_F(FashionMnist, SplitSizesShapeAndClasses) {
  const Manifest manifest = read_manifest(dir_->path());
  EXPECT_EQ(manifest.shape, (ImageShape{28, 28, 1}));
  EXPECT_EQ(manifest.classes, 10);
  EXPECT_EQ(manifest.class_names.front(), "T-shirt/top");
  EXPECT_EQ(manifest.class_names.back(), "Ankle boot");
  EXPECT_EQ(Dataset::open(dir_->path(), "train").samples, 60000 - kValidation);
  EXPECT_EQ(Dataset::open(dir_->path(), "val").samples, kValidation);
  EXPECT_EQ(Dataset::open(dir_->path(), "test").samples, 10000);
  EXPECT_EQ(manifest.splits.at("train").size(), 3u);  // 20000 + 20000 + 15000
  // Fashion-MNIST's well-known training statistics (mean 0.286, std 0.353).
  EXPECT_NEAR(manifest.mean[0], 0.286, 0.002);
  EXPECT_NEAR(manifest.std[0], 0.353, 0.002);
}

TEST_F(FashionMnist, FirstImagesAndLabelsMatchTheIdxFilesByteForByte) {
  const std::vector<uint8_t> train_images = idx_payload("train-images-idx3-ubyte.gz", 3);
  const std::vector<uint8_t> train_labels = idx_payload("train-labels-idx1-ubyte.gz", 1);
  const std::vector<uint8_t> test_images = idx_payload("t10k-images-idx3-ubyte.gz", 3);
  const std::vector<uint8_t> test_labels = idx_payload("t10k-labels-idx1-ubyte.gz", 1);
  ASSERT_EQ(train_labels.size(), 60000u);
  ASSERT_EQ(test_labels.size(), 10000u);
  const std::vector<bool> in_validation = validation_mask(60000, kValidation, 1);

  constexpr int64_t kChecked = 500;
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  read_split_start("test", kChecked, images, labels);
  for (int64_t i = 0; i < kChecked; ++i) EXPECT_EQ(labels[i], test_labels[i]) << "test " << i;
  EXPECT_TRUE(std::equal(images.begin(), images.end(), test_images.begin()));

  for (const std::string split : {"train", "val"}) {
    read_split_start(split, kChecked, images, labels);
    int64_t source = -1;
    for (int64_t i = 0; i < kChecked; ++i) {
      do ++source;
      while (in_validation[source] != (split == "val"));
      EXPECT_EQ(labels[i], train_labels[source]) << split << " " << i;
      ASSERT_TRUE(std::equal(images.begin() + i * 784, images.begin() + (i + 1) * 784,
                             train_images.begin() + source * 784))
          << split << " sample " << i << " (source " << source << ")";
    }
  }
}

TEST_F(FashionMnist, LoaderDeliversTheTestSplitOnce) {
  LoaderOptions options;
  options.dir = dir_->path();
  options.split = "test";
  options.mode = LoaderMode::eval;
  options.global_batch = 768;  // 10000 = 13 * 768 + 16
  options.world = 2;
  options.rank = 1;
  Loader loader(options);
  Batch batch;
  int64_t batches = 0, samples = 0;
  while (loader.next(batch)) {
    ++batches;
    samples += batch.count;
  }
  EXPECT_EQ(batches, 14);
  EXPECT_EQ(samples, 5000);  // rank 1 of 2: every odd test sample
  EXPECT_EQ(batch.count, 8);
  EXPECT_EQ(loader.position(), 10000);
}

}  // namespace
}  // namespace mone
