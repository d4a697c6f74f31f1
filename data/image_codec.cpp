#include "data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <csetjmp>
#include <cstring>
#include <string>

#include "data/error.h"

namespace mone {

namespace {

// PIL's ITU-R 601-2 luma in 16-bit fixed point (Image.convert("L")).
uint8_t luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((19595u * rgb[0] + 38470u * rgb[1] + 7471u * rgb[2] + 0x8000u) >> 16);
}

// Grey (1) or RGB (3) pixels to the channel count asked for.
void convert_channels(DecodedImage& image, int64_t channels) {
  if (image.channels == channels) return;
  const int64_t pixels = image.height * image.width;
  std::vector<uint8_t> converted(static_cast<size_t>(pixels * channels));
  for (int64_t i = 0; i < pixels; ++i) {
    if (channels == 1) {
      converted[static_cast<size_t>(i)] = luma(image.pixels.data() + 3 * i);
    } else {
      std::memset(converted.data() + 3 * i, image.pixels[static_cast<size_t>(i)], 3);
    }
  }
  image.pixels = std::move(converted);
  image.channels = channels;
}

// A TurboJPEG decompressor per thread (a handle must not be shared), freed
// when the thread ends.
class JpegDecoder {
 public:
  JpegDecoder() : handle_(tjInitDecompress()) {
    if (handle_ == nullptr) throw DataError(std::string("cannot start libjpeg-turbo: ") + tjGetErrorStr2(nullptr));
  }
  ~JpegDecoder() { tjDestroy(handle_); }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;
  tjhandle get() const { return handle_; }

 private:
  tjhandle handle_;
};

DecodedImage decode_jpeg(const uint8_t* bytes, size_t size, int64_t at_least_height, int64_t at_least_width) {
  thread_local JpegDecoder decoder;
  tjhandle handle = decoder.get();
  auto* data = const_cast<unsigned char*>(bytes);  // TurboJPEG 2.x takes non-const input it does not modify
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle, data, static_cast<unsigned long>(size), &width, &height, &subsampling,
                          &colorspace) != 0) {
    throw DataError(std::string("not a readable JPEG: ") + tjGetErrorStr2(handle));
  }
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    throw DataError("CMYK JPEGs are not supported (convert the file to RGB)");
  }
  // The smallest of 1, 1/2, 1/4, 1/8 that keeps at least the rows and columns
  // asked for (0: all of them).
  if (at_least_height <= 0) at_least_height = height;
  if (at_least_width <= 0) at_least_width = width;
  int factors = 0;
  const tjscalingfactor* factor = tjGetScalingFactors(&factors);
  tjscalingfactor chosen{1, 1};
  for (int i = 0; i < factors; ++i) {
    const tjscalingfactor f = factor[i];
    // 1/2, 1/4 and 1/8 have fast SIMD inverse DCTs; the other M/8 factors
    // decode no faster than full size (measured: docs/performance.md).
    if (f.num != 1 || (f.denom != 2 && f.denom != 4 && f.denom != 8)) continue;
    const int scaled_width = TJSCALED(width, f), scaled_height = TJSCALED(height, f);
    if (scaled_width >= at_least_width && scaled_height >= at_least_height &&
        scaled_width < TJSCALED(width, chosen)) {
      chosen = f;
    }
  }
  DecodedImage image;
  image.width = TJSCALED(width, chosen);
  image.height = TJSCALED(height, chosen);
  image.channels = colorspace == TJCS_GRAY ? 1 : 3;
  image.pixels.resize(static_cast<size_t>(image.height * image.width * image.channels));
  // Default flags: the accurate integer IDCT and smooth upsampling, as PIL
  // decodes with the same library; a warning (premature end of data) fails.
  if (tjDecompress2(handle, data, static_cast<unsigned long>(size), image.pixels.data(), static_cast<int>(image.width),
                    0, static_cast<int>(image.height), image.channels == 1 ? TJPF_GRAY : TJPF_RGB,
                    TJFLAG_STOPONWARNING) != 0) {
    throw DataError(std::string("corrupt JPEG: ") + tjGetErrorStr2(handle));
  }
  return image;
}

struct PngInput {
  const uint8_t* bytes;
  size_t size;
  size_t at;
  std::string error;
};

void read_png_bytes(png_structp png, png_bytep out, png_size_t count) {
  auto* input = static_cast<PngInput*>(png_get_io_ptr(png));
  if (input->size - input->at < count) png_error(png, "the file is truncated");
  std::memcpy(out, input->bytes + input->at, count);
  input->at += count;
}

[[noreturn]] void on_png_error(png_structp png, png_const_charp message) {
  static_cast<PngInput*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // ancillary-chunk trouble does not change the pixels

// Everything libpng may longjmp out of, in a frame of its own: no local here
// needs to survive the jump.
void read_png_pixels(png_structp png, png_infop info, DecodedImage& image) {
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  png_set_expand(png);       // palette to RGB, grey below 8 bits to 8, tRNS to alpha
  png_set_strip_16(png);     // the high byte, as PIL
  png_set_strip_alpha(png);  // PIL's convert("RGB") drops alpha without compositing
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image.height = png_get_image_height(png, info);
  image.width = png_get_image_width(png, info);
  image.channels = (color & PNG_COLOR_MASK_COLOR) != 0 ? 3 : 1;
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (row_bytes != static_cast<size_t>(image.width * image.channels)) png_error(png, "unexpected row layout");
  image.pixels.resize(row_bytes * static_cast<size_t>(image.height));
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = image.pixels.data() + y * row_bytes;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
}

DecodedImage decode_png(const uint8_t* bytes, size_t size) {
  PngInput input{bytes, size, 0, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &input, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) throw DataError("cannot start libpng");
  DecodedImage image;
  volatile bool failed = false;  // set after the longjmp, read after it
  if (setjmp(png_jmpbuf(png)) == 0) {
    png_set_read_fn(png, &input, read_png_bytes);
    read_png_pixels(png, info, image);
  } else {
    failed = true;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (failed) throw DataError("corrupt PNG: " + input.error);
  return image;
}

void write_png_bytes(png_structp png, png_bytep data, png_size_t count) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + count);
}

void write_png_pixels(png_structp png, png_infop info, const DecodedImage& image, std::vector<uint8_t>& out) {
  png_set_write_fn(png, &out, write_png_bytes, nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               image.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row_bytes = static_cast<size_t>(image.width * image.channels);
  for (int64_t y = 0; y < image.height; ++y) {
    png_write_row(png, const_cast<png_bytep>(image.pixels.data() + static_cast<size_t>(y) * row_bytes));
  }
  png_write_end(png, nullptr);
}

}  // namespace

ImageFormat sniff_image_format(const uint8_t* bytes, size_t size) {
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return ImageFormat::jpeg;
  static const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(bytes, kPngSignature, 8) == 0) return ImageFormat::png;
  return ImageFormat::unknown;
}

DecodedImage decode_image(const uint8_t* bytes, size_t size, int64_t channels, int64_t at_least_height,
                          int64_t at_least_width) {
  if (channels != 1 && channels != 3) {
    throw DataError("cannot decode to " + std::to_string(channels) + " channels (1 or 3)");
  }
  DecodedImage image;
  switch (sniff_image_format(bytes, size)) {
    case ImageFormat::jpeg:
      image = decode_jpeg(bytes, size, at_least_height, at_least_width);
      break;
    case ImageFormat::png:
      image = decode_png(bytes, size);
      break;
    case ImageFormat::unknown:
      throw DataError("not a JPEG or PNG file (no JPEG or PNG signature)");
  }
  convert_channels(image, channels);
  return image;
}

std::vector<uint8_t> encode_png(const DecodedImage& image) {
  std::vector<uint8_t> out;
  PngInput errors{nullptr, 0, 0, {}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) throw DataError("cannot start libpng");
  volatile bool failed = false;  // set after the longjmp, read after it
  if (setjmp(png_jmpbuf(png)) == 0) {
    write_png_pixels(png, info, image, out);
  } else {
    failed = true;
  }
  png_destroy_write_struct(&png, &info);
  if (failed) throw DataError("cannot encode PNG: " + errors.error);
  return out;
}

}  // namespace mone
