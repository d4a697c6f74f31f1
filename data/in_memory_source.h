// A SampleSource over images and labels already decoded into memory (IDX and
// CIFAR files are small enough to read whole).
#pragma once

#include <cstring>
#include <vector>

#include "data/sources.h"

namespace mone {

class InMemorySource : public SampleSource {
 public:
  InMemorySource(int64_t pixels, std::vector<uint8_t> images, std::vector<int32_t> labels)
      : pixels_(pixels), images_(std::move(images)), labels_(std::move(labels)) {}

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int32_t read(int64_t index, uint8_t* image) const override {
    std::memcpy(image, images_.data() + index * pixels_, static_cast<size_t>(pixels_));
    return labels_[static_cast<size_t>(index)];
  }

 private:
  int64_t pixels_;
  std::vector<uint8_t> images_;
  std::vector<int32_t> labels_;
};

// "0", "1", ... for sources that carry no class names.
inline std::vector<std::string> numbered_class_names(int64_t classes) {
  std::vector<std::string> names;
  for (int64_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
  return names;
}

}  // namespace mone
