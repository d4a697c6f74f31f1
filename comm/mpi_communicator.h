// Communicator over MPI on the host: nonblocking collectives (MPI_Iallreduce,
// MPI_Ibcast, MPI_Iallgather, MPI_Ibarrier) completed by a wait with a
// deadline, so a dead or diverged rank ends the job instead of hanging it.
// Every collective runs on the communicator's CommThread (comm/comm_thread.h),
// so start_allreduce overlaps the caller's computation; blocking calls queue
// behind the started ones and wait.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "comm/comm_thread.h"
#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "comm/world.h"

namespace mone {

class MpiCommunicator : public Communicator {
 public:
  // Collective over the world: duplicates MPI_COMM_WORLD so this
  // communicator's traffic never matches anyone else's, and sets
  // MPI_ERRORS_RETURN on the duplicate so every return code reaches us.
  // `timeout` bounds each collective, from its start to its completion.
  explicit MpiCommunicator(const World& world, std::chrono::seconds timeout = std::chrono::seconds(600));
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::chrono::seconds timeout() const { return watchdog_.timeout(); }

  // float32: MPI_Iallreduce in float32. bfloat16: MPI has no bf16 type, so
  // the ranks allgather the bf16 buffers and each sums them in float32 in rank
  // order 0..size-1 and rounds once to nearest-even (scratch: count * size
  // bf16 plus count float32).
  void allreduce(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context) override;
  void broadcast(void* data, size_t count, ElementType type, int root, const std::string& context) override;
  void allgather(const void* send, void* receive, size_t count, ElementType type,
                 const std::string& context) override;
  void barrier(const std::string& context) override;
  void start_allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                       const std::string& context) override;
  void wait_started() override;

 private:
  // Runs `collective` on the communication thread and waits for it.
  void run_and_wait(const std::function<void()>& collective);
  void allreduce_now(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context);
  void allreduce_float32(float* data, size_t count, ReduceOp op, const Collective& what);
  void allreduce_bfloat16(uint16_t* data, size_t count, ReduceOp op, const Collective& what);
  // Completes `request` by the watchdog's deadline after `started`; past it,
  // or on any MPI error, reports and aborts the job.
  void wait(MPI_Request& request, std::chrono::steady_clock::time_point started, const Collective& what);
  void check(int code, const char* call, const Collective& what);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  Watchdog watchdog_;
  CommThread worker_;  // drained in the destructor before MPI_Comm_free
};

}  // namespace mone
