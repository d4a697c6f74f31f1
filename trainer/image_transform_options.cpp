#include "trainer/image_transform_options.h"

#include "trainer/exit_codes.h"
#include "trainer/option_table.h"

namespace mone {

void define_image_transform_options(OptionTable& table, ImageTransformOptions& o) {
  table.add("image-size", &o.image_size,
            "encoded datasets: S of the S x S images the loader crops to and the model sees (0: the dataset's)");
  table.add("rrc-scale-min", &o.rrc_scale_min, "encoded datasets: RandomResizedCrop's smallest area fraction");
  table.add("rrc-scale-max", &o.rrc_scale_max, "encoded datasets: RandomResizedCrop's largest area fraction");
  table.add("rrc-ratio-min", &o.rrc_ratio_min, "encoded datasets: RandomResizedCrop's smallest width/height");
  table.add("rrc-ratio-max", &o.rrc_ratio_max, "encoded datasets: RandomResizedCrop's largest width/height");
  table.add("eval-crop", &o.eval_crop, "encoded datasets: evaluation resizes to S / eval-crop, then centre crops S");
  table.add_flag("no-dct-downscale", &o.no_dct_downscale,
                 "encoded datasets: always decode JPEGs at full size (else at 1/2, 1/4, 1/8 when the crop allows)");
}

void check_image_transform_options(const ImageTransformOptions& o) {
  const auto require = [](bool condition, const std::string& option, const std::string& message) {
    if (!condition) throw UsageError("--" + option + ": " + message);
  };
  require(o.image_size >= 0, "image-size", "must be >= 0, got " + std::to_string(o.image_size));
  require(o.rrc_scale_min > 0 && o.rrc_scale_min <= o.rrc_scale_max, "rrc-scale-min",
          "must be in (0, --rrc-scale-max]");
  require(o.rrc_scale_max <= 1, "rrc-scale-max", "must be <= 1");
  require(o.rrc_ratio_min > 0 && o.rrc_ratio_min <= o.rrc_ratio_max, "rrc-ratio-min",
          "must be in (0, --rrc-ratio-max]");
  require(o.eval_crop > 0 && o.eval_crop <= 1, "eval-crop", "must be in (0, 1]");
}

void apply_image_transform_options(const ImageTransformOptions& o, LoaderOptions& loader) {
  loader.image_size = o.image_size;
  loader.random_resized_crop = {o.rrc_scale_min, o.rrc_scale_max, o.rrc_ratio_min, o.rrc_ratio_max};
  loader.eval_crop_fraction = o.eval_crop;
  loader.dct_downscale = !o.no_dct_downscale;
}

ImageShape model_image_shape(const ImageTransformOptions& o, const Dataset& train) {
  ImageShape shape = train.shape;
  if (train.storage == Storage::encoded && o.image_size > 0) shape.height = shape.width = o.image_size;
  return shape;
}

}  // namespace mone
