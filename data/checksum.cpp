#include "data/checksum.h"

#include <zlib.h>

#include <algorithm>

namespace mone {

void Crc32::update(const void* bytes, size_t size) {
  // crc32() takes a uInt length; feed large buffers in pieces.
  const auto* data = static_cast<const Bytef*>(bytes);
  while (size > 0) {
    const size_t piece = std::min<size_t>(size, 1u << 30);
    value_ = static_cast<uint32_t>(crc32(value_, data, static_cast<uInt>(piece)));
    data += piece;
    size -= piece;
  }
}

void Crc32::update_labels(const int32_t* labels, size_t count) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  update(labels, count * sizeof(int32_t));
#else
  for (size_t i = 0; i < count; ++i) {
    const auto v = static_cast<uint32_t>(labels[i]);
    const unsigned char bytes[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                                    static_cast<unsigned char>(v >> 16),
                                    static_cast<unsigned char>(v >> 24)};
    update(bytes, 4);
  }
#endif
}

}  // namespace mone
