#include "comm/nccl_communicator.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace mone {

namespace {
ncclDataType_t nccl_type(ElementType type) { return type == ElementType::float32 ? ncclFloat32 : ncclBfloat16; }

// Setup failures happen before any collective: every rank throws its own error.
void check_setup(bool ok, const std::string& call, const std::string& message) {
  if (!ok) throw std::runtime_error("NcclCommunicator: " + call + " failed: " + message);
}
}  // namespace

NcclCommunicator::NcclCommunicator(const World& world, std::chrono::seconds timeout)
    : rank_(world.rank()),
      size_(world.size()),
      where_(world.describe()),
      watchdog_("NCCL", where_, timeout, [this] {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
      }) {
  ncclUniqueId id;
  if (rank_ == 0) {
    const ncclResult_t code = ncclGetUniqueId(&id);
    if (code != ncclSuccess) {  // the other ranks already wait in the broadcast below: end the job
      std::fprintf(stderr, "mone: %s: ncclGetUniqueId failed: %s; aborting the job\n", where_.c_str(),
                   ncclGetErrorString(code));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  const int sent = MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  check_setup(sent == MPI_SUCCESS, "MPI_Bcast of the NCCL unique id", "MPI error " + std::to_string(sent));
  cudaError_t cuda = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
  check_setup(cuda == cudaSuccess, "cudaStreamCreateWithFlags", cudaGetErrorString(cuda));
  for (cudaEvent_t* event : {&ready_, &done_}) {
    cuda = cudaEventCreateWithFlags(event, cudaEventDisableTiming);
    check_setup(cuda == cudaSuccess, "cudaEventCreateWithFlags", cudaGetErrorString(cuda));
  }
  cuda = cudaMalloc(&barrier_word_, sizeof(float));
  check_setup(cuda == cudaSuccess, "cudaMalloc of the barrier word", cudaGetErrorString(cuda));
  const ncclResult_t code = ncclCommInitRank(&comm_, size_, id, rank_);
  check_setup(code == ncclSuccess, "ncclCommInitRank",
              std::string(ncclGetErrorString(code)) + " (" + ncclGetLastError(nullptr) + ")");
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) ncclCommDestroy(comm_);
  if (barrier_word_) cudaFree(barrier_word_);
  if (done_) cudaEventDestroy(done_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclCommunicator::allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                                 const std::string& context) {
  const Collective what{"allreduce", count * element_size(type), context};
  enqueue_allreduce(data, count, type, op, what);
  wait(what);
}

void NcclCommunicator::start_allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                                       const std::string& context) {
  const Collective what{"allreduce", count * element_size(type), context};
  enqueue_allreduce(data, count, type, op, what);
  started_bytes_ += what.bytes;
  if (started_contexts_.find(context) == std::string::npos)
    started_contexts_ += (started_contexts_.empty() ? "" : "; ") + context;
}

void NcclCommunicator::wait_started() {
  if (started_bytes_ == 0) return;
  const std::string contexts = started_contexts_;
  wait({"started allreduces", started_bytes_, contexts});
  started_bytes_ = 0;
  started_contexts_.clear();
}

void NcclCommunicator::enqueue_allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                                         const Collective& what) {
  order_after_producer(what);
  check(ncclAllReduce(data, data, count, nccl_type(type), op == ReduceOp::sum ? ncclSum : ncclAvg, comm_, stream_),
        "ncclAllReduce", what);
}

void NcclCommunicator::broadcast(void* data, size_t count, ElementType type, int root, const std::string& context) {
  const Collective what{"broadcast", count * element_size(type), context};
  if (root < 0 || root >= size_)
    throw std::out_of_range("NcclCommunicator::broadcast: root " + std::to_string(root) + " outside 0.." +
                            std::to_string(size_ - 1));
  order_after_producer(what);
  check(ncclBroadcast(data, data, count, nccl_type(type), root, comm_, stream_), "ncclBroadcast", what);
  wait(what);
}

void NcclCommunicator::allgather(const void* send, void* receive, size_t count, ElementType type,
                                 const std::string& context) {
  const Collective what{"allgather", count * element_size(type), context};
  order_after_producer(what);
  check(ncclAllGather(send, receive, count, nccl_type(type), comm_, stream_), "ncclAllGather", what);
  wait(what);
}

void NcclCommunicator::barrier(const std::string& context) {
  const Collective what{"barrier", 0, context};
  check(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce",
        what);
  wait(what);
}

void NcclCommunicator::order_after_producer(const Collective& what) {
  check_cuda(cudaEventRecord(ready_, producer_), "cudaEventRecord", what);
  check_cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent", what);
}

void NcclCommunicator::wait(const Collective& what) {
  check_cuda(cudaEventRecord(done_, stream_), "cudaEventRecord", what);
  watchdog_.wait(
      what, std::chrono::steady_clock::now(),
      [&] {
        const cudaError_t status = cudaEventQuery(done_);
        if (status == cudaSuccess) return true;
        if (status != cudaErrorNotReady) check_cuda(status, "cudaEventQuery", what);
        // A peer that died or failed shows up here, not as a CUDA error.
        ncclResult_t async = ncclSuccess;
        check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError", what);
        if (async != ncclSuccess && async != ncclInProgress)
          watchdog_.abort_job(what, std::string("failed asynchronously: ") + ncclGetErrorString(async) + " (" +
                                        ncclGetLastError(comm_) + ")");
        return false;
      },
      Watchdog::Pacing::yield);
}

void NcclCommunicator::check(ncclResult_t code, const char* call, const Collective& what) {
  if (code != ncclSuccess && code != ncclInProgress)
    watchdog_.abort_job(what, std::string(call) + " failed: " + ncclGetErrorString(code) + " (" +
                                  ncclGetLastError(comm_) + ")");
}

void NcclCommunicator::check_cuda(cudaError_t code, const char* call, const Collective& what) {
  if (code != cudaSuccess) watchdog_.abort_job(what, std::string(call) + " failed: " + cudaGetErrorString(code));
}

}  // namespace mone
