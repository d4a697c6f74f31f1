// The watchdog of the communicators (MPI and NCCL): a collective is polled
// until it completes, and a collective that fails or outlives the timeout
// ends the whole job with one line naming the rank, the collective, its bytes
// and the caller's context. Other ranks are (or will be) waiting inside the
// same collective; only ending the job frees them, so there is no exception
// a caller could swallow.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace mone {

// What is running, for the message: "allreduce of 4096 bytes (step 120)".
struct Collective {
  const char* name;
  size_t bytes;
  const std::string& context;
};

class Watchdog {
 public:
  // How the waiting thread passes the time between polls.
  enum class Pacing {
    yield,             // always yield (a device collective: completion is watched through an event)
    yield_then_sleep,  // yield for the first 200 us, then sleep 20 us between polls (leaves the core to compute)
  };

  // `backend` ("MPI", "NCCL") and `where` (World::describe()) head the
  // message. `before_abort` (may be empty) runs first when the job is ended,
  // e.g. to abort the library's communicator so its kernels stop.
  Watchdog(std::string backend, std::string where, std::chrono::seconds timeout,
           std::function<void()> before_abort = {});

  std::chrono::seconds timeout() const { return timeout_; }

  // Calls `poll` until it returns true; ends the job once the timeout has
  // passed since `started`. `poll` reports its own errors through abort_job.
  void wait(const Collective& what, std::chrono::steady_clock::time_point started, const std::function<bool()>& poll,
            Pacing pacing) const;
  // Prints "mone: <where>: <backend> <name> of <bytes> bytes (<context>)
  // <reason>; aborting the job" and ends every process of the job.
  [[noreturn]] void abort_job(const Collective& what, const std::string& reason) const;

 private:
  std::string backend_, where_;
  std::chrono::seconds timeout_;
  std::function<void()> before_abort_;
};

}  // namespace mone
