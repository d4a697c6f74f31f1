// The trainer's options for encoded (image folder) datasets: the image size
// the loader crops to and the model is built for, RandomResizedCrop's
// ranges, the evaluation centre crop and JPEG DCT downscaling
// (docs/trainer.md, "Image folders"). Raw datasets ignore them.
#pragma once

#include <cstdint>

#include "data/dataset.h"
#include "data/loader.h"

namespace mone {

class OptionTable;

struct ImageTransformOptions {
  int64_t image_size = 0;  // 0: the dataset's (mone data --resize)
  double rrc_scale_min = 0.08, rrc_scale_max = 1.0;
  double rrc_ratio_min = 3.0 / 4.0, rrc_ratio_max = 4.0 / 3.0;
  double eval_crop = 0.875;  // evaluation: resize to S / eval_crop, centre crop S
  bool no_dct_downscale = false;
};

void define_image_transform_options(OptionTable& table, ImageTransformOptions& options);
// Throws UsageError naming the option.
void check_image_transform_options(const ImageTransformOptions& options);
void apply_image_transform_options(const ImageTransformOptions& options, LoaderOptions& loader);
// The image shape the model is built for: the dataset's, or for an encoded
// dataset --image-size when given.
ImageShape model_image_shape(const ImageTransformOptions& options, const Dataset& train);

}  // namespace mone
