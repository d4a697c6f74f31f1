// Communicator over NCCL for device buffers: every pointer passed to it is
// device memory of the current CUDA device. Rank 0 creates the NCCL unique id
// and broadcasts it over MPI (World); every rank then joins with
// ncclCommInitRank on its current device.
//
// Ordering: the buffers are produced and consumed by work on the producer
// stream (set_producer_stream; the legacy default stream unless set). Each
// collective waits for that stream's work so far (an event), runs on the
// communicator's own stream, and the call returns when it is complete
// (blocking, as the Communicator interface requires).
//
// Watchdog: while waiting, the call polls ncclCommGetAsyncError; an error, or
// no completion within the timeout, aborts the NCCL communicator
// (ncclCommAbort) and the job, naming the collective, its size and context.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <string>

#include "comm/communicator.h"
#include "comm/watchdog.h"
#include "comm/world.h"

namespace mone {

class NcclCommunicator : public Communicator {
 public:
  // Collective over the world. The CUDA device must be set (cudaSetDevice,
  // usually world.local_rank()) before constructing.
  explicit NcclCommunicator(const World& world, std::chrono::seconds timeout = std::chrono::seconds(600));
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void set_producer_stream(cudaStream_t stream) { producer_ = stream; }

  // float32 and bfloat16 natively (ncclFloat32, ncclBfloat16), average as
  // ncclAvg. NCCL's ring and tree algorithms hand every rank the same reduced
  // bytes, as the interface requires.
  void allreduce(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context) override;
  void start_allreduce(void* data, size_t count, ElementType type, ReduceOp op, const std::string& context) override;
  void wait_started() override;
  void broadcast(void* data, size_t count, ElementType type, int root, const std::string& context) override;
  void allgather(const void* send, void* receive, size_t count, ElementType type,
                 const std::string& context) override;
  // An allreduce of one float on the device: NCCL has no barrier.
  void barrier(const std::string& context) override;

 private:
  // Makes the communicator's stream wait for the producer's work so far.
  void order_after_producer(const Collective& what);
  void enqueue_allreduce(void* data, size_t count, ElementType type, ReduceOp op, const Collective& what);
  // Waits for the collective just enqueued, with the watchdog.
  void wait(const Collective& what);
  void check(ncclResult_t code, const char* call, const Collective& what);
  void check_cuda(cudaError_t code, const char* call, const Collective& what);

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaStream_t producer_ = nullptr;  // legacy default stream
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  float* barrier_word_ = nullptr;
  int rank_ = 0, size_ = 1;
  std::string where_;
  // Aborts comm_ before ending the job, so NCCL's kernels stop.
  Watchdog watchdog_;
  // The allreduces started and not yet waited for: their bytes and contexts
  // name them if the watchdog fires.
  size_t started_bytes_ = 0;
  std::string started_contexts_;
};

}  // namespace mone
