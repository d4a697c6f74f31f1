#include "data/augment.h"

#include <algorithm>

#include "data/error.h"
#include "data/random.h"

namespace mone {

namespace {

// Output pixel (y, x) reads source pixel (y + shift_y, x' + shift_x), where x'
// is x or, mirrored, W - 1 - x; sources outside the image are padding (value
// 0). kChannels = 0 means "runtime `channels`".
template <int kChannels>
void transform_rows(const uint8_t* image, int64_t H, int64_t W, int64_t shift_y, int64_t shift_x,
                    bool flip, const float* table, float* out, int64_t channels = kChannels) {
  const int64_t C = kChannels > 0 ? kChannels : channels;
  const auto fill_padding = [&](float* begin, int64_t pixels) {
    for (int64_t i = 0; i < pixels; ++i)
      for (int64_t c = 0; c < C; ++c) begin[i * C + c] = table[c * 256];
  };
  // Output columns whose source column lies inside the image: [x_begin, x_end).
  const int64_t x_begin = flip ? std::max<int64_t>(0, shift_x) : std::max<int64_t>(0, -shift_x);
  const int64_t x_end = flip ? std::min<int64_t>(W, W + shift_x) : std::min<int64_t>(W, W - shift_x);
  for (int64_t y = 0; y < H; ++y) {
    float* row = out + y * W * C;
    const int64_t source_y = y + shift_y;
    if (source_y < 0 || source_y >= H || x_begin >= x_end) {
      fill_padding(row, W);
      continue;
    }
    fill_padding(row, x_begin);
    fill_padding(row + x_end * C, W - x_end);
    const int64_t first_source_x = (flip ? W - 1 - x_begin : x_begin) + shift_x;
    const uint8_t* source = image + (source_y * W + first_source_x) * C;
    const int64_t step = flip ? -C : C;
    float* target = row + x_begin * C;
    for (int64_t x = x_begin; x < x_end; ++x, source += step, target += C)
      for (int64_t c = 0; c < C; ++c) target[c] = table[c * 256 + source[c]];
  }
}

void shifted_rows(const uint8_t* image, int64_t H, int64_t W, int64_t C, int64_t shift_y, int64_t shift_x, bool flip,
                  const float* table, float* out) {
  switch (C) {  // a compile-time channel count lets the compiler unroll the pixel loop
    case 1:
      transform_rows<1>(image, H, W, shift_y, shift_x, flip, table, out);
      break;
    case 3:
      transform_rows<3>(image, H, W, shift_y, shift_x, flip, table, out);
      break;
    default:
      transform_rows<0>(image, H, W, shift_y, shift_x, flip, table, out, C);
  }
}

}  // namespace

std::vector<float> normalisation_table(const std::vector<double>& mean, const std::vector<double>& std,
                                       int64_t channels) {
  std::vector<float> table(static_cast<size_t>(256 * channels));
  for (int64_t c = 0; c < channels; ++c) {
    // A constant channel has std 0; leave it centred rather than divide by zero.
    const double scale = std[static_cast<size_t>(c)] > 1e-12 ? std[static_cast<size_t>(c)] : 1.0;
    for (int v = 0; v < 256; ++v) {
      table[static_cast<size_t>(c * 256 + v)] = static_cast<float>((v / 255.0 - mean[static_cast<size_t>(c)]) / scale);
    }
  }
  return table;
}

void normalise_image(const uint8_t* image, ImageShape shape, bool flip, const float* table, float* out) {
  shifted_rows(image, shape.height, shape.width, shape.channels, 0, 0, flip, table, out);
}

ImageTransform::ImageTransform(ImageShape shape, const std::vector<double>& mean,
                               const std::vector<double>& std, AugmentOptions options,
                               uint64_t seed)
    : shape_(shape), options_(options), seed_(seed),
      normalised_(normalisation_table(mean, std, shape.channels)) {
  if (options.crop_padding < 0) {
    throw DataError("crop padding " + std::to_string(options.crop_padding) + " is negative");
  }
}

void ImageTransform::apply(const uint8_t* image, int64_t epoch, int64_t sample, float* out) const {
  const int64_t H = shape_.height, W = shape_.width, C = shape_.channels;
  int64_t shift_y = 0, shift_x = 0;  // crop offset minus padding: output (y, x) reads (y + shift_y, ...)
  bool flip = false;
  if (options_.enabled) {
    data_random::Stream draws(data_random::key(
        data_random::key(seed_, data_random::kAugment, static_cast<uint64_t>(epoch)),
        static_cast<uint64_t>(sample)));
    const auto span = static_cast<uint64_t>(2 * options_.crop_padding + 1);
    shift_y = static_cast<int64_t>(draws.below(span)) - options_.crop_padding;
    shift_x = static_cast<int64_t>(draws.below(span)) - options_.crop_padding;
    flip = options_.flip && draws.below(2) == 1;
  }
  shifted_rows(image, H, W, C, shift_y, shift_x, flip, normalised_.data(), out);
}

}  // namespace mone
