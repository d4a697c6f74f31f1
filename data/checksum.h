// The shard checksum: CRC-32 (zlib's, the one in gzip and PNG) over the
// images' bytes in storage order, continued over the labels as little-endian
// int32. Cheap enough to verify every shard when it is opened, and easy to
// recompute elsewhere (Python: zlib.crc32(labels, zlib.crc32(images))).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mone {

class Crc32 {
 public:
  void update(const void* bytes, size_t size);
  void update_labels(const int32_t* labels, size_t count);
  uint32_t value() const { return value_; }

 private:
  uint32_t value_ = 0;
};

}  // namespace mone
