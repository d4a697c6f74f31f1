// Collectives over host values that are not gradients: the resume header,
// parameter checksums, loss and metric sums. They travel bit for bit as
// 16-bit words through ElementType::bfloat16, whose broadcast and allgather
// copy bits and never do arithmetic, so any trivially copyable value fits
// without widening the Communicator interface. (On GPUs these go through the
// host MPI communicator, not NCCL.)
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace mone {

// Root's `bytes` (even) replace every other rank's.
void broadcast_bytes(Communicator& comm, void* data, size_t bytes, int root, const std::string& context);
// Each rank contributes `bytes` (even); `receive` holds bytes * size(), rank r's at r * bytes.
void allgather_bytes(Communicator& comm, const void* send, void* receive, size_t bytes, const std::string& context);
// Replaces `values` by their sums over the ranks, added in rank order
// 0, 1, ..., size-1 in double: the same bits on every rank, and with one rank
// the values themselves.
void sum_over_ranks(Communicator& comm, std::vector<double>& values, const std::string& context);

}  // namespace mone
