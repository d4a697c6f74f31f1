// One thread that runs a communicator's collectives, one after another in
// the order they were queued.
//
// Why a thread: on the host, Open MPI advances a nonblocking collective only
// inside MPI calls (MPI_Test, MPI_Wait), so an MPI_Iallreduce started before
// the rest of backward would sit idle until backward ended. This thread keeps
// calling MPI_Test while the training thread computes. It is the only thread
// that calls MPI while it has work, so MPI_THREAD_SERIALIZED is enough: the
// queue's mutex orders its calls after the main thread's earlier ones.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace mone {

class CommThread {
 public:
  CommThread();
  ~CommThread();  // waits for the queued jobs, then joins
  CommThread(const CommThread&) = delete;
  CommThread& operator=(const CommThread&) = delete;

  // Queues `job`; returns at once.
  void post(std::function<void()> job);
  // Returns once every queued job has run; rethrows the first exception a job
  // threw since the last wait (the jobs after it are dropped).
  void wait_idle();

 private:
  void serve();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace mone
