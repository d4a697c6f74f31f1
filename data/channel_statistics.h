// Per-channel histograms of pixel values: the manifest's mean and std,
// exact with integer sums, and the same whatever order the images (or
// partial histograms from worker threads) are added in.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace mone {

class ChannelStatistics {
 public:
  explicit ChannelStatistics(int64_t channels) : counts_(static_cast<size_t>(channels)) {}

  // `values` = H*W*C bytes of one HWC image.
  void add(const uint8_t* image, int64_t values) {
    const auto channels = static_cast<int64_t>(counts_.size());
    for (int64_t i = 0; i < values; i += channels)
      for (int64_t c = 0; c < channels; ++c) ++counts_[static_cast<size_t>(c)][image[i + c]];
  }

  void merge(const ChannelStatistics& other) {
    for (size_t c = 0; c < counts_.size(); ++c)
      for (size_t v = 0; v < 256; ++v) counts_[c][v] += other.counts_[c][v];
  }

  // In units of pixel/255, like the normalisation that uses them.
  void result(std::vector<double>& mean, std::vector<double>& std) const {
    mean.clear();
    std.clear();
    for (const auto& histogram : counts_) {
      unsigned __int128 n = 0, sum = 0, squares = 0;
      for (uint64_t v = 0; v < 256; ++v) {
        n += histogram[v];
        sum += histogram[v] * v;
        squares += histogram[v] * v * v;
      }
      const double count = static_cast<double>(n);
      const double variance = static_cast<double>(n * squares - sum * sum) / (count * count);
      mean.push_back(static_cast<double>(sum) / count / 255.0);
      std.push_back(std::sqrt(variance) / 255.0);
    }
  }

 private:
  std::vector<std::array<uint64_t, 256>> counts_;
};

}  // namespace mone
