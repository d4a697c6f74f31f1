// CIFAR-10/100 binary files written here, converted, and read back.
#include <gtest/gtest.h>

#include <fstream>

#include "data/error.h"
#include "data/shard.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

// A record's pixel: plane c, row y, column x, derived from the record number.
uint8_t pixel(int record, int c, int y, int x) { return static_cast<uint8_t>(record * 31 + c * 7 + y * 3 + x); }

void write_cifar(const std::filesystem::path& path, int first_record, int records, int label_bytes,
                 int classes) {
  std::ofstream out(path, std::ios::binary);
  for (int r = first_record; r < first_record + records; ++r) {
    if (label_bytes == 2) out.put(static_cast<char>(r % 20));  // coarse label, ignored
    out.put(static_cast<char>(r % classes));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.put(static_cast<char>(pixel(r, c, y, x)));
  }
}

// Checks split `split` holds records first.. in order, stored HWC.
void expect_records(const std::filesystem::path& dir, const std::string& split, int first, int count,
                    int classes) {
  const Dataset dataset = Dataset::open(dir, split);
  ASSERT_EQ(dataset.samples, count);
  ASSERT_EQ(dataset.shape, (ImageShape{32, 32, 3}));
  ASSERT_EQ(dataset.classes, classes);
  int record = first;
  for (const ShardEntry& entry : dataset.shards) {
    ShardReader reader(dir / entry.file, {split, dataset.shape, dataset.classes, entry, true});
    std::vector<uint8_t> images(static_cast<size_t>(entry.samples * 3072));
    reader.read_images(0, entry.samples, images.data());
    for (int64_t j = 0; j < entry.samples; ++j, ++record) {
      EXPECT_EQ(reader.labels()[j], record % classes);
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          for (int c = 0; c < 3; ++c)
            ASSERT_EQ(images[j * 3072 + (y * 32 + x) * 3 + c], pixel(record, c, y, x))
                << split << " record " << record;
    }
  }
}

TEST(Cifar, Cifar10BatchesConvertInOrderToHwc) {
  testing::TempDir input, output;
  write_cifar(input.path() / "data_batch_1.bin", 0, 4, 1, 10);
  write_cifar(input.path() / "data_batch_2.bin", 4, 3, 1, 10);
  write_cifar(input.path() / "test_batch.bin", 100, 5, 1, 10);
  std::ofstream(input.path() / "batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
  ConvertOptions options;
  options.out = output.path();
  options.shard_size = 3;
  convert(load_cifar(input.path(), CifarVariant::cifar10), options);
  expect_records(output.path(), "train", 0, 7, 10);
  expect_records(output.path(), "test", 100, 5, 10);
  EXPECT_EQ(read_manifest(output.path()).class_names[9], "truck");
}

TEST(Cifar, Cifar100UsesTheFineLabel) {
  testing::TempDir input, output;
  write_cifar(input.path() / "train.bin", 50, 6, 2, 100);
  write_cifar(input.path() / "test.bin", 0, 2, 2, 100);
  ConvertOptions options;
  options.out = output.path();
  convert(load_cifar(input.path(), CifarVariant::cifar100), options);
  expect_records(output.path(), "train", 50, 6, 100);
  expect_records(output.path(), "test", 0, 2, 100);
  EXPECT_EQ(read_manifest(output.path()).class_names[42], "42");
}

TEST(Cifar, TruncatedFileIsNamed) {
  testing::TempDir input;
  write_cifar(input.path() / "data_batch_1.bin", 0, 2, 1, 10);
  write_cifar(input.path() / "test_batch.bin", 0, 2, 1, 10);
  std::filesystem::resize_file(input.path() / "test_batch.bin", 3073 + 100);
  try {
    load_cifar(input.path(), CifarVariant::cifar10);
    FAIL() << "no error";
  } catch (const DataError& error) {
    EXPECT_CONTAINS(error.what(), (input.path() / "test_batch.bin").string() +
                                      ": size 3173 is not a positive multiple of the 3073-byte CIFAR record");
  }
}

}  // namespace
}  // namespace mone
