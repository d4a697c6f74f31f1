#include "data/format.h"

#include <cstdio>

namespace mone::data_format {

std::string shard_file_name(const std::string& split, int64_t index) {
  char number[32];
  std::snprintf(number, sizeof number, "%05lld", static_cast<long long>(index));
  return split + "-" + number + ".h5";
}

}  // namespace mone::data_format

namespace mone {

std::string ImageShape::to_string() const {
  return std::to_string(height) + "x" + std::to_string(width) + "x" + std::to_string(channels);
}

}  // namespace mone
