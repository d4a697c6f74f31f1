// Turns one encoded image (a JPEG or PNG from a version 2 shard) into the
// float32 S x S x C image the model sees. Training: torchvision's
// RandomResizedCrop box, a horizontal flip with probability 1/2, the
// normalisation. Evaluation: resize the shorter side to S / crop_fraction,
// centre crop S x S, normalise. The draws come from the stream keyed
// (seed, "augm", epoch, sample), as for raw images, so they depend on nothing
// else. With dct_downscale a JPEG is decoded at the smallest of 1/2, 1/4, 1/8
// that still gives the crop at least S x S pixels.
#pragma once

#include <cstdint>
#include <vector>

#include "data/format.h"
#include "data/resized_crop.h"

namespace mone {

struct EncodedTransformOptions {
  bool train = false;
  bool flip = true;  // training only
  RandomResizedCropOptions random_resized_crop;
  double eval_crop_fraction = 0.875;
  bool dct_downscale = true;
};

class EncodedImageTransform {
 public:
  EncodedImageTransform(ImageShape shape, const std::vector<double>& mean, const std::vector<double>& std,
                        EncodedTransformOptions options, uint64_t seed);

  // `height` x `width`: the image's stored size. Throws DataError when the
  // bytes do not decode (the caller names the sample).
  void apply(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int64_t epoch, int64_t sample,
             float* out) const;
  // The S x S x C uint8 image before normalisation; returns whether `out`
  // is to be mirrored.
  bool crop(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int64_t epoch, int64_t sample,
            uint8_t* out) const;

 private:
  ImageShape shape_;
  EncodedTransformOptions options_;
  uint64_t seed_;
  std::vector<float> normalised_;
};

}  // namespace mone
