#include "comm/communicator.h"

#include <cstdint>

namespace mone {

size_t element_size(ElementType type) { return type == ElementType::float32 ? sizeof(float) : sizeof(uint16_t); }

const char* element_type_name(ElementType type) { return type == ElementType::float32 ? "float32" : "bfloat16"; }

}  // namespace mone
