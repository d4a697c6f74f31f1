// Where converted samples come from: IDX (MNIST family), the CIFAR-10/100
// binary format, or a deterministic synthetic generator. Each gives a train
// and a test part of uint8 HWC images with int32 labels.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/format.h"

namespace mone {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual int64_t size() const = 0;
  // Writes sample `index`'s image (H*W*C bytes, HWC) to `image`; returns its label.
  virtual int32_t read(int64_t index, uint8_t* image) const = 0;
};

struct SourceDataset {
  ImageShape shape;
  int64_t classes = 0;
  std::vector<std::string> class_names;
  std::unique_ptr<SampleSource> train;
  std::unique_ptr<SampleSource> test;
};

// The Debian package dataset-fashion-mnist installs the IDX files here.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each optionally .gz. Without
// class names the classes are named "0".."K-1", K = largest label + 1.
SourceDataset load_idx(const std::filesystem::path& dir, std::vector<std::string> class_names = {});
SourceDataset load_fashion_mnist(const std::filesystem::path& dir = kFashionMnistDir);

enum class CifarVariant { cifar10, cifar100 };
// CIFAR-10: data_batch_1.bin.. and test_batch.bin (+ batches.meta.txt names);
// CIFAR-100: train.bin and test.bin, fine labels (+ fine_label_names.txt).
SourceDataset load_cifar(const std::filesystem::path& dir, CifarVariant variant);

struct SyntheticOptions {
  ImageShape shape{28, 28, 1};
  int64_t classes = 10;
  int64_t train_count = 1000;
  int64_t test_count = 200;
  uint64_t seed = 0;
};
// Images and labels are pure functions of (seed, part, index).
SourceDataset make_synthetic(const SyntheticOptions& options);

}  // namespace mone
