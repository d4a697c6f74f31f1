// JPEG and PNG files held in memory, decoded into 8-bit interleaved pixels
// (libjpeg-turbo and libpng), and the lossless PNG encoding the converter
// stores re-encoded PNGs with. Errors are DataErrors that say what is wrong
// with the bytes; callers prefix the file (or shard and sample) they came from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mone {

enum class ImageFormat { jpeg, png, unknown };

// By signature, not by file name: FF D8 FF (JPEG), 89 'PNG' (PNG).
ImageFormat sniff_image_format(const uint8_t* bytes, size_t size);

struct DecodedImage {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // HWC
};

// Decodes to `channels` (1: grey, 3: RGB) 8-bit channels the way PIL's
// Image.convert does: alpha is dropped, a palette is expanded, 16-bit samples
// keep their high byte, grey is replicated to RGB, and RGB becomes grey as
// L = (19595 R + 38470 G + 7471 B + 32768) >> 16. Any libjpeg warning
// (a truncated or damaged file) is an error.
//
// `at_least_height` / `at_least_width` (0: full size) let a JPEG decode at the
// smallest DCT scale of 1/2, 1/4, 1/8 (libjpeg-turbo's fast scaled IDCTs)
// whose output still has at least that many rows and columns; a PNG always
// decodes at full size.
DecodedImage decode_image(const uint8_t* bytes, size_t size, int64_t channels, int64_t at_least_height = 0,
                          int64_t at_least_width = 0);

// Lossless 8-bit grey or RGB PNG of `image` (zlib's default level, no
// ancillary chunks, so the same pixels always give the same bytes).
std::vector<uint8_t> encode_png(const DecodedImage& image);

}  // namespace mone
