#include "comm/mpi_communicator.h"

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "comm/bfloat16.h"

namespace mone {

namespace {
std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, length);
}

void check_setup(int code, const char* call) {
  if (code != MPI_SUCCESS) throw std::runtime_error(std::string(call) + " failed: " + mpi_error_text(code));
}

MPI_Datatype mpi_type(ElementType type) { return type == ElementType::float32 ? MPI_FLOAT : MPI_UINT16_T; }

// MPI counts are int. Every rank passes the same count, so every rank throws
// here together and none is left inside a collective.
int mpi_count(size_t count, const char* collective) {
  if (count > static_cast<size_t>(INT_MAX))
    throw std::length_error(std::string("MpiCommunicator::") + collective + ": " + std::to_string(count) +
                            " elements exceed MPI's int count");
  return static_cast<int>(count);
}
}  // namespace

MpiCommunicator::MpiCommunicator(const World& world, std::chrono::seconds timeout)
    : watchdog_("MPI", world.describe(), timeout) {
  check_setup(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
  check_setup(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_setup(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_setup(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  // An error of a started allreduce that nobody waited for is dropped here:
  // a destructor cannot report it, and the owner is being torn down anyway.
  try {
    worker_.wait_idle();
  } catch (const std::exception&) {
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::run_and_wait(const std::function<void()>& collective) {
  worker_.post(collective);
  worker_.wait_idle();
}

void MpiCommunicator::allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                                const std::string& context) {
  start_allreduce(data, count, type, op, context);
  wait_started();
}

void MpiCommunicator::start_allreduce(void* data, size_t count, ElementType type, ReduceOp op,
                                      const std::string& context) {
  // The job outlives this call: it keeps its own copy of the context.
  worker_.post([this, data, count, type, op, context] { allreduce_now(data, count, type, op, context); });
}

void MpiCommunicator::wait_started() { worker_.wait_idle(); }

void MpiCommunicator::allreduce_now(void* data, size_t count, ElementType type, ReduceOp op,
                                    const std::string& context) {
  const Collective what{"allreduce", count * element_size(type), context};
  if (type == ElementType::float32)
    allreduce_float32(static_cast<float*>(data), count, op, what);
  else
    allreduce_bfloat16(static_cast<uint16_t*>(data), count, op, what);
}

void MpiCommunicator::allreduce_float32(float* data, size_t count, ReduceOp op, const Collective& what) {
  const int n = mpi_count(count, what.name);
  const auto started = std::chrono::steady_clock::now();
  MPI_Request request;
  check(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, comm_, &request), "MPI_Iallreduce", what);
  wait(request, started, what);
  if (op == ReduceOp::average) {
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }
}

void MpiCommunicator::allreduce_bfloat16(uint16_t* data, size_t count, ReduceOp op, const Collective& what) {
  const int n = mpi_count(count, what.name);
  std::vector<uint16_t> gathered(count * static_cast<size_t>(size_));
  const auto started = std::chrono::steady_clock::now();
  MPI_Request request;
  check(MPI_Iallgather(data, n, MPI_UINT16_T, gathered.data(), n, MPI_UINT16_T, comm_, &request), "MPI_Iallgather",
        what);
  wait(request, started, what);
  // The same inputs summed in the same order on every rank: the same bits.
  std::vector<float> sum(count, 0.0f);
  for (int r = 0; r < size_; ++r) {
    const uint16_t* contribution = gathered.data() + static_cast<size_t>(r) * count;
    for (size_t i = 0; i < count; ++i) sum[i] += bfloat16_to_float(contribution[i]);
  }
  const float scale = op == ReduceOp::average ? 1.0f / static_cast<float>(size_) : 1.0f;
  for (size_t i = 0; i < count; ++i) data[i] = float_to_bfloat16(sum[i] * scale);
}

void MpiCommunicator::broadcast(void* data, size_t count, ElementType type, int root, const std::string& context) {
  if (root < 0 || root >= size_)
    throw std::out_of_range("MpiCommunicator::broadcast: root " + std::to_string(root) + " outside 0.." +
                            std::to_string(size_ - 1));
  run_and_wait([&] {
    const Collective what{"broadcast", count * element_size(type), context};
    const int n = mpi_count(count, what.name);
    const auto started = std::chrono::steady_clock::now();
    MPI_Request request;
    check(MPI_Ibcast(data, n, mpi_type(type), root, comm_, &request), "MPI_Ibcast", what);
    wait(request, started, what);
  });
}

void MpiCommunicator::allgather(const void* send, void* receive, size_t count, ElementType type,
                                const std::string& context) {
  run_and_wait([&] {
    const Collective what{"allgather", count * element_size(type), context};
    const int n = mpi_count(count, what.name);
    const auto started = std::chrono::steady_clock::now();
    MPI_Request request;
    check(MPI_Iallgather(send, n, mpi_type(type), receive, n, mpi_type(type), comm_, &request), "MPI_Iallgather",
          what);
    wait(request, started, what);
  });
}

void MpiCommunicator::barrier(const std::string& context) {
  run_and_wait([&] {
    const Collective what{"barrier", 0, context};
    const auto started = std::chrono::steady_clock::now();
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier", what);
    wait(request, started, what);
  });
}

void MpiCommunicator::wait(MPI_Request& request, std::chrono::steady_clock::time_point started,
                           const Collective& what) {
  // MPI_Test drives the collective's progress, so poll.
  watchdog_.wait(
      what, started,
      [&] {
        int done = 0;
        check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test", what);
        return done != 0;
      },
      Watchdog::Pacing::yield_then_sleep);
}

void MpiCommunicator::check(int code, const char* call, const Collective& what) {
  if (code != MPI_SUCCESS) watchdog_.abort_job(what, std::string(call) + " failed: " + mpi_error_text(code));
}

}  // namespace mone
