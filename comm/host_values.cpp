#include "comm/host_values.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace mone {

namespace {
size_t words(size_t bytes, const char* call) {
  if (bytes % sizeof(uint16_t) != 0)
    throw std::invalid_argument(std::string(call) + ": " + std::to_string(bytes) +
                                " bytes is not a whole number of 16-bit words");
  return bytes / sizeof(uint16_t);
}
}  // namespace

void broadcast_bytes(Communicator& comm, void* data, size_t bytes, int root, const std::string& context) {
  comm.broadcast(data, words(bytes, "broadcast_bytes"), ElementType::bfloat16, root, context);
}

void allgather_bytes(Communicator& comm, const void* send, void* receive, size_t bytes, const std::string& context) {
  comm.allgather(send, receive, words(bytes, "allgather_bytes"), ElementType::bfloat16, context);
}

void sum_over_ranks(Communicator& comm, std::vector<double>& values, const std::string& context) {
  const size_t bytes = values.size() * sizeof(double);
  std::vector<double> gathered(values.size() * static_cast<size_t>(comm.size()));
  allgather_bytes(comm, values.data(), gathered.data(), bytes, context);
  for (size_t i = 0; i < values.size(); ++i) {
    double sum = 0.0;
    for (int r = 0; r < comm.size(); ++r) sum += gathered[static_cast<size_t>(r) * values.size() + i];
    values[i] = sum;
  }
}

}  // namespace mone
