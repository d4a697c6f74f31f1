// Turns one stored uint8 HWC image into the float32 HWC image the model sees:
// for training a random crop of the zero-padded image and a random
// horizontal flip, then per-channel normalisation with the manifest's
// mean/std. The random choices depend only on (seed, epoch, sample), never on
// the rank or thread that does the work.
#pragma once

#include <cstdint>
#include <vector>

#include "data/format.h"

namespace mone {

struct AugmentOptions {
  bool enabled = false;  // false: normalisation only (evaluation)
  int64_t crop_padding = 4;
  bool flip = true;
};

// table[c * 256 + v] = (v / 255 - mean[c]) / std[c] (a channel with std 0
// is divided by 1): normalisation as one lookup per value.
std::vector<float> normalisation_table(const std::vector<double>& mean, const std::vector<double>& std,
                                       int64_t channels);

// out = the normalised image, mirrored left-right when `flip`.
void normalise_image(const uint8_t* image, ImageShape shape, bool flip, const float* table, float* out);

class ImageTransform {
 public:
  ImageTransform(ImageShape shape, const std::vector<double>& mean, const std::vector<double>& std,
                 AugmentOptions options, uint64_t seed);

  void apply(const uint8_t* image, int64_t epoch, int64_t sample, float* out) const;

 private:
  ImageShape shape_;
  AugmentOptions options_;
  uint64_t seed_;
  // normalised_[c * 256 + v] = (v / 255 - mean[c]) / std[c]: one lookup per value.
  std::vector<float> normalised_;
};

}  // namespace mone
