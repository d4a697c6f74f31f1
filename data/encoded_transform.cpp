#include "data/encoded_transform.h"

#include <cmath>

#include "data/augment.h"
#include "data/error.h"
#include "data/image_codec.h"
#include "data/random.h"

namespace mone {

EncodedImageTransform::EncodedImageTransform(ImageShape shape, const std::vector<double>& mean,
                                             const std::vector<double>& std, EncodedTransformOptions options,
                                             uint64_t seed)
    : shape_(shape), options_(options), seed_(seed), normalised_(normalisation_table(mean, std, shape.channels)) {
  const RandomResizedCropOptions& rrc = options.random_resized_crop;
  if (!(rrc.scale_min > 0 && rrc.scale_min <= rrc.scale_max && rrc.scale_max <= 1)) {
    throw DataError("RandomResizedCrop scale range [" + std::to_string(rrc.scale_min) + ", " +
                    std::to_string(rrc.scale_max) + "] must satisfy 0 < min <= max <= 1");
  }
  if (!(rrc.ratio_min > 0 && rrc.ratio_min <= rrc.ratio_max)) {
    throw DataError("RandomResizedCrop ratio range [" + std::to_string(rrc.ratio_min) + ", " +
                    std::to_string(rrc.ratio_max) + "] must satisfy 0 < min <= max");
  }
  if (!(options.eval_crop_fraction > 0 && options.eval_crop_fraction <= 1)) {
    throw DataError("evaluation crop fraction " + std::to_string(options.eval_crop_fraction) + " must be in (0, 1]");
  }
}

bool EncodedImageTransform::crop(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int64_t epoch,
                                 int64_t sample, uint8_t* out) const {
  const int64_t size = shape_.height;
  CropBox box;
  bool flip = false;
  if (options_.train) {
    data_random::Stream draws(data_random::key(
        data_random::key(seed_, data_random::kAugment, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(sample)));
    box = random_resized_crop_box(height, width, options_.random_resized_crop, draws);
    flip = options_.flip && draws.below(2) == 1;
  } else {
    box = centre_crop_box(height, width, size, options_.eval_crop_fraction);
  }
  // The decoded image needs at least `size` pixels across the box in each axis.
  const int64_t at_least_height = options_.dct_downscale ? static_cast<int64_t>(std::ceil(size * height / box.height)) : 0;
  const int64_t at_least_width = options_.dct_downscale ? static_cast<int64_t>(std::ceil(size * width / box.width)) : 0;
  const DecodedImage image = decode_image(encoded.data(), encoded.size(), shape_.channels, at_least_height, at_least_width);
  const bool reduced = image.height != height || image.width != width;
  if (reduced && !options_.dct_downscale) {
    throw DataError("decodes to " + std::to_string(image.height) + "x" + std::to_string(image.width) +
                    " pixels, the shard says " + std::to_string(height) + "x" + std::to_string(width));
  }
  if (reduced) box = scale_box(box, height, width, image.height, image.width);
  resample_box(image.pixels.data(), image.height, image.width, shape_.channels, box, size, shape_.width, out);
  return flip;
}

void EncodedImageTransform::apply(const std::vector<uint8_t>& encoded, int64_t height, int64_t width, int64_t epoch,
                                  int64_t sample, float* out) const {
  thread_local std::vector<uint8_t> cropped;
  cropped.resize(static_cast<size_t>(shape_.pixels()));
  const bool flip = crop(encoded, height, width, epoch, sample, cropped.data());
  normalise_image(cropped.data(), shape_, flip, normalised_.data(), out);
}

}  // namespace mone
