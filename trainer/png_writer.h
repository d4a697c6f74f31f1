// 8-bit RGB images and writing them as PNG files (libpng).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace mone {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& other) const { return r == other.r && g == other.g && b == other.b; }
};

class RgbImage {
 public:
  RgbImage(int64_t width, int64_t height, Rgb fill = {});

  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  Rgb& at(int64_t x, int64_t y) { return pixels_[static_cast<size_t>(y * width_ + x)]; }
  const Rgb& at(int64_t x, int64_t y) const { return pixels_[static_cast<size_t>(y * width_ + x)]; }
  // Copies `source` with its top-left corner at (x, y); it must fit.
  void paste(const RgbImage& source, int64_t x, int64_t y);
  // Packed RGB rows, as libpng reads and writes them.
  uint8_t* bytes() { return &pixels_.front().r; }
  const uint8_t* bytes() const { return &pixels_.front().r; }

 private:
  int64_t width_, height_;
  std::vector<Rgb> pixels_;  // row-major, 3 bytes each
};

// Writes under a temporary name and renames, so `path` is either a whole PNG
// or untouched. Throws std::runtime_error naming the file.
void write_png(const std::filesystem::path& path, const RgbImage& image);

}  // namespace mone
