// Collectives over raw buffers, independent of the backend (MPI on the host,
// NCCL on device buffers). comm/ never sees the model: callers pass a
// pointer, an element count and an element type.
//
// Every call is collective: all ranks make the same calls in the same order
// with the same counts, types, ops and roots. A call either completes on every
// rank or ends the job (see MpiCommunicator's watchdog); it never returns an
// error a rank could recover from alone, because the other ranks would be
// left waiting inside the collective.
//
// `context` says what the caller was doing ("step 120", "checkpoint
// broadcast"); it appears in the failure message and nowhere else.
#pragma once

#include <cstddef>
#include <string>

namespace mone {

// bfloat16 buffers are uint16_t storage (comm/bfloat16.h).
enum class ElementType { float32, bfloat16 };
enum class ReduceOp { sum, average };

size_t element_size(ElementType type);
const char* element_type_name(ElementType type);

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place over `count` elements. average = sum scaled by 1/size(). Every
  // rank ends with bitwise the same buffer.
  virtual void allreduce(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context) = 0;
  // Root's `count` elements replace every other rank's.
  virtual void broadcast(void* data, size_t count, ElementType type, int root, const std::string& context) = 0;
  // Each rank contributes `count` elements of `send`; `receive` holds
  // count * size() elements, rank r's at offset r * count.
  virtual void allgather(const void* send, void* receive, size_t count, ElementType type,
                         const std::string& context) = 0;
  virtual void barrier(const std::string& context) = 0;

  // Overlap: start_allreduce returns at once and the allreduce completes in
  // the background (MPI: on the communication thread; NCCL: on the
  // communicator's stream after an event of the compute stream). `data` must
  // not be read or written until wait_started() returns. Started allreduces
  // complete in the order they were started, and a blocking call made
  // meanwhile runs after them. wait_started() blocks until every started
  // allreduce is complete; the watchdog bounds each one like a blocking call.
  //
  // The defaults run the allreduce at once and make the wait a no-op:
  // correct for any backend, without overlap.
  virtual void start_allreduce(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context) {
    allreduce(data, count, type, op, context);
  }
  virtual void wait_started() {}
};

}  // namespace mone
