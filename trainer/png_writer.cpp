#include "trainer/png_writer.h"

#include <png.h>

#include <stdexcept>
#include <string>
#include <system_error>

namespace mone {

static_assert(sizeof(Rgb) == 3, "RgbImage hands its pixels to libpng as packed RGB bytes");

RgbImage::RgbImage(int64_t width, int64_t height, Rgb fill)
    : width_(width), height_(height), pixels_(static_cast<size_t>(width * height), fill) {}

void RgbImage::paste(const RgbImage& source, int64_t x, int64_t y) {
  if (x < 0 || y < 0 || x + source.width() > width_ || y + source.height() > height_) {
    throw std::logic_error("RgbImage::paste: the source does not fit");
  }
  for (int64_t row = 0; row < source.height(); ++row) {
    for (int64_t column = 0; column < source.width(); ++column) at(x + column, y + row) = source.at(column, row);
  }
}

void write_png(const std::filesystem::path& path, const RgbImage& image) {
  // libpng's simplified API reports failure through its return value and
  // `message`, so no setjmp/longjmp crosses our C++ frames.
  png_image header{};
  header.version = PNG_IMAGE_VERSION;
  header.width = static_cast<png_uint_32>(image.width());
  header.height = static_cast<png_uint_32>(image.height());
  header.format = PNG_FORMAT_RGB;
  const std::filesystem::path temporary = path.string() + ".tmp";
  if (!png_image_write_to_file(&header, temporary.c_str(), 0, image.bytes(), static_cast<png_int_32>(image.width() * 3),
                               nullptr)) {
    const std::string reason = header.message;
    png_image_free(&header);
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw std::runtime_error("cannot write '" + path.string() + "': " + reason);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) throw std::runtime_error("cannot write '" + path.string() + "': " + error.message());
}

}  // namespace mone
