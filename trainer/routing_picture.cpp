#include "trainer/routing_picture.h"

#include <cmath>
#include <stdexcept>

namespace mone {

namespace {

uint8_t grey_of(const uint8_t* pixel, int64_t channels) {
  if (channels == 1) return pixel[0];
  return static_cast<uint8_t>(std::lround(0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2]));
}

uint8_t blend(uint8_t grey, uint8_t tint) {
  return static_cast<uint8_t>(std::lround((1.0 - kTintAlpha) * grey + kTintAlpha * tint));
}

}  // namespace

Rgb expert_colour(int64_t expert, int64_t experts) {
  if (experts == 1) return kExpertPalette.back();
  const int64_t last = static_cast<int64_t>(kExpertPalette.size()) - 1;
  const double position = static_cast<double>(expert * last) / static_cast<double>(experts - 1);
  return kExpertPalette[static_cast<size_t>(std::lround(position))];
}

RgbImage upscale(const uint8_t* image, const ImageShape& shape, int64_t scale) {
  if (shape.channels != 1 && shape.channels != 3) {
    throw std::invalid_argument("only 1- and 3-channel images can be drawn, not " + shape.to_string());
  }
  RgbImage out(shape.width * scale, shape.height * scale);
  for (int64_t y = 0; y < out.height(); ++y) {
    for (int64_t x = 0; x < out.width(); ++x) {
      const uint8_t* pixel = image + ((y / scale) * shape.width + x / scale) * shape.channels;
      out.at(x, y) = shape.channels == 1 ? Rgb{pixel[0], pixel[0], pixel[0]} : Rgb{pixel[0], pixel[1], pixel[2]};
    }
  }
  return out;
}

RgbImage routing_picture(const uint8_t* image, const ImageShape& shape, int64_t patch, const int32_t* expert_of_token,
                         int64_t experts, int64_t scale) {
  RgbImage out = upscale(image, shape, scale);
  const int64_t patches_per_row = shape.width / patch;
  const int64_t cell = patch * scale;  // a patch's side in the picture
  for (int64_t y = 0; y < out.height(); ++y) {
    for (int64_t x = 0; x < out.width(); ++x) {
      Rgb& pixel = out.at(x, y);
      if ((x > 0 && x % cell == 0) || (y > 0 && y % cell == 0)) {
        pixel = kGridLine;
        continue;
      }
      const int64_t token = (y / cell) * patches_per_row + x / cell;
      const Rgb tint = expert_colour(expert_of_token[token], experts);
      const uint8_t grey = grey_of(image + ((y / scale) * shape.width + x / scale) * shape.channels, shape.channels);
      pixel = {blend(grey, tint.r), blend(grey, tint.g), blend(grey, tint.b)};
    }
  }
  return out;
}

RgbImage grid_picture(const std::vector<std::vector<RgbImage>>& rows) {
  const RgbImage& first = rows.at(0).at(0);
  const int64_t columns = static_cast<int64_t>(rows[0].size());
  const int64_t count = static_cast<int64_t>(rows.size());
  RgbImage out(columns * first.width() + (columns - 1) * kGridGap, count * first.height() + (count - 1) * kGridGap,
               kGridBackground);
  for (int64_t row = 0; row < count; ++row) {
    for (int64_t column = 0; column < columns; ++column) {
      out.paste(rows[static_cast<size_t>(row)][static_cast<size_t>(column)], column * (first.width() + kGridGap),
                row * (first.height() + kGridGap));
    }
  }
  return out;
}

}  // namespace mone
