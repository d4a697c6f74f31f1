// Crop boxes and the resampling that turns a box of a decoded image into the
// S x S image the model sees: torchvision's RandomResizedCrop rule for
// training, "resize the shorter side, then centre crop" for evaluation and
// for raw storage. Boxes are in source pixels; one resampling call does the
// resize and the crop together, with the same filter taps as resizing the
// whole image and cropping afterwards.
#pragma once

#include <cstdint>

#include "data/random.h"

namespace mone {

struct CropBox {
  double top = 0, left = 0, height = 0, width = 0;
};

struct RandomResizedCropOptions {
  double scale_min = 0.08, scale_max = 1.0;          // of the image's area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height
};

// torchvision.transforms.RandomResizedCrop.get_params, draw for draw: up to 10
// attempts of (area = uniform(scale) * H * W, ratio = exp(uniform(log ratio)),
// w = round(sqrt(area * ratio)), h = round(sqrt(area / ratio)), Python's
// round-half-even), accepted when 0 < w <= W and 0 < h <= H, with the top
// uniform in [0, H - h] and the left in [0, W - w]; else the centre crop of
// the whole image clamped to the ratio range. Uniforms are draws.uniform(),
// integer offsets draws.below(n + 1).
CropBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropOptions& options,
                                data_random::Stream& draws);

// torchvision's Resize(round_down(S / crop_fraction)) then CenterCrop(S): the
// shorter side becomes R = floor(S / crop_fraction), the longer
// floor(R * long / short); the crop's offsets are round((resized - S) / 2).
CropBox centre_crop_box(int64_t height, int64_t width, int64_t size, double crop_fraction);

// The same box for an image decoded at a reduced size (a JPEG's DCT scaling).
CropBox scale_box(const CropBox& box, int64_t height, int64_t width, int64_t decoded_height, int64_t decoded_width);

// Resamples `box` of the HWC image to out_height x out_width with a bilinear
// (triangle) filter widened by the reduction factor when shrinking, as PIL's
// antialiased BILINEAR; rounds to uint8.
void resample_box(const uint8_t* image, int64_t height, int64_t width, int64_t channels, const CropBox& box,
                  int64_t out_height, int64_t out_width, uint8_t* out);

}  // namespace mone
