#include "data/resized_crop.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mone {

namespace {

// Python's round(): to nearest, ties to even (the default rounding mode).
int64_t round_half_even(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

// The source range and normalised weights of every output position along one axis.
struct Taps {
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<float> weights;  // [out_size * stride]
  int64_t stride = 0;
};

Taps make_taps(int64_t in_size, double start, double length, int64_t out_size) {
  const double scale = length / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);  // widened when shrinking: antialiasing
  const double support = filter_scale;                // the triangle filter's radius is 1
  Taps taps;
  taps.stride = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.weights.assign(static_cast<size_t>(out_size * taps.stride), 0.0f);
  for (int64_t x = 0; x < out_size; ++x) {
    const double centre = start + (static_cast<double>(x) + 0.5) * scale;
    int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(centre - support + 0.5)));
    int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(std::floor(centre + support + 0.5)));
    hi = std::min(hi, lo + taps.stride);
    if (hi <= lo) {  // a centre on the image's edge: its nearest pixel
      lo = std::clamp<int64_t>(static_cast<int64_t>(centre), 0, in_size - 1);
      hi = lo + 1;
    }
    float* w = taps.weights.data() + x * taps.stride;
    double sum = 0;
    for (int64_t k = lo; k < hi; ++k) {
      const double distance = std::abs((static_cast<double>(k) + 0.5 - centre) / filter_scale);
      const double weight = std::max(0.0, 1.0 - distance);
      w[k - lo] = static_cast<float>(weight);
      sum += weight;
    }
    for (int64_t k = 0; k < hi - lo; ++k) w[k] = sum > 0 ? static_cast<float>(w[k] / sum) : 1.0f / (hi - lo);
    taps.first[static_cast<size_t>(x)] = lo;
    taps.count[static_cast<size_t>(x)] = hi - lo;
  }
  return taps;
}

}  // namespace

CropBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropOptions& options,
                                data_random::Stream& draws) {
  const double area = static_cast<double>(height * width);
  const double log_min = std::log(options.ratio_min), log_max = std::log(options.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (options.scale_min + (options.scale_max - options.scale_min) * draws.uniform());
    const double aspect = std::exp(log_min + (log_max - log_min) * draws.uniform());
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto top = static_cast<int64_t>(draws.below(static_cast<uint64_t>(height - h + 1)));
      const auto left = static_cast<int64_t>(draws.below(static_cast<uint64_t>(width - w + 1)));
      return {static_cast<double>(top), static_cast<double>(left), static_cast<double>(h), static_cast<double>(w)};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < options.ratio_min) {
    h = round_half_even(static_cast<double>(w) / options.ratio_min);
  } else if (in_ratio > options.ratio_max) {
    w = round_half_even(static_cast<double>(h) * options.ratio_max);
  }
  return {static_cast<double>((height - h) / 2), static_cast<double>((width - w) / 2), static_cast<double>(h),
          static_cast<double>(w)};
}

CropBox centre_crop_box(int64_t height, int64_t width, int64_t size, double crop_fraction) {
  const auto shorter = static_cast<int64_t>(static_cast<double>(size) / crop_fraction);
  const bool tall = height > width;
  const int64_t longer = shorter * (tall ? height : width) / (tall ? width : height);
  const int64_t resized_height = tall ? longer : shorter, resized_width = tall ? shorter : longer;
  const double scale_y = static_cast<double>(height) / static_cast<double>(resized_height);
  const double scale_x = static_cast<double>(width) / static_cast<double>(resized_width);
  const double top = static_cast<double>(round_half_even(static_cast<double>(resized_height - size) / 2.0));
  const double left = static_cast<double>(round_half_even(static_cast<double>(resized_width - size) / 2.0));
  return {top * scale_y, left * scale_x, static_cast<double>(size) * scale_y, static_cast<double>(size) * scale_x};
}

CropBox scale_box(const CropBox& box, int64_t height, int64_t width, int64_t decoded_height, int64_t decoded_width) {
  const double y = static_cast<double>(decoded_height) / static_cast<double>(height);
  const double x = static_cast<double>(decoded_width) / static_cast<double>(width);
  return {box.top * y, box.left * x, box.height * y, box.width * x};
}

void resample_box(const uint8_t* image, int64_t height, int64_t width, int64_t channels, const CropBox& box,
                  int64_t out_height, int64_t out_width, uint8_t* out) {
  const Taps columns = make_taps(width, box.left, box.width, out_width);
  const Taps rows = make_taps(height, box.top, box.height, out_height);
  const int64_t row_lo = rows.first.front();
  const int64_t row_hi = rows.first.back() + rows.count.back();
  const int64_t C = channels;
  // Horizontal pass over the source rows the vertical taps use, then vertical.
  std::vector<float> horizontal(static_cast<size_t>((row_hi - row_lo) * out_width * C));
  for (int64_t y = row_lo; y < row_hi; ++y) {
    const uint8_t* source = image + y * width * C;
    float* target = horizontal.data() + (y - row_lo) * out_width * C;
    for (int64_t x = 0; x < out_width; ++x) {
      const float* w = columns.weights.data() + x * columns.stride;
      const uint8_t* first = source + columns.first[static_cast<size_t>(x)] * C;
      for (int64_t c = 0; c < C; ++c) {
        float sum = 0;
        for (int64_t k = 0; k < columns.count[static_cast<size_t>(x)]; ++k) sum += w[k] * first[k * C + c];
        target[x * C + c] = sum;
      }
    }
  }
  const int64_t row_values = out_width * C;
  std::vector<float> sum(static_cast<size_t>(row_values));
  for (int64_t y = 0; y < out_height; ++y) {
    std::fill(sum.begin(), sum.end(), 0.0f);
    const float* w = rows.weights.data() + y * rows.stride;
    for (int64_t k = 0; k < rows.count[static_cast<size_t>(y)]; ++k) {
      const float* source = horizontal.data() + (rows.first[static_cast<size_t>(y)] + k - row_lo) * row_values;
      for (int64_t i = 0; i < row_values; ++i) sum[static_cast<size_t>(i)] += w[k] * source[i];
    }
    uint8_t* target = out + y * row_values;
    for (int64_t i = 0; i < row_values; ++i) {
      target[i] = static_cast<uint8_t>(std::clamp(sum[static_cast<size_t>(i)], 0.0f, 255.0f) + 0.5f);
    }
  }
}

}  // namespace mone
