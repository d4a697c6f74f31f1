#include "comm/watchdog.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

namespace mone {

Watchdog::Watchdog(std::string backend, std::string where, std::chrono::seconds timeout,
                   std::function<void()> before_abort)
    : backend_(std::move(backend)), where_(std::move(where)), timeout_(timeout),
      before_abort_(std::move(before_abort)) {}

void Watchdog::wait(const Collective& what, std::chrono::steady_clock::time_point started,
                    const std::function<bool()>& poll, Pacing pacing) const {
  const auto deadline = started + timeout_;
  // Small messages finish within the first microseconds of yielding polls;
  // past kSpin a host collective's thread sleeps between polls, leaving the
  // core to backward (the training thread of this rank, and of other ranks
  // on an oversubscribed host).
  constexpr auto kSpin = std::chrono::microseconds(200);
  constexpr auto kPollInterval = std::chrono::microseconds(20);
  for (;;) {
    if (poll()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline)
      abort_job(what, "timed out after " + std::to_string(timeout_.count()) +
                          " s (a rank is dead, hung, or making different collective calls)");
    if (pacing == Pacing::yield || now - started < kSpin)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(kPollInterval);
  }
}

void Watchdog::abort_job(const Collective& what, const std::string& reason) const {
  std::fprintf(stderr, "mone: %s: %s %s of %zu bytes (%s) %s; aborting the job\n", where_.c_str(), backend_.c_str(),
               what.name, what.bytes, what.context.c_str(), reason.c_str());
  // MPI_Abort ends the process without flushing stdout: a line already
  // written there (rank 0's "saved checkpoint ...") would be lost.
  std::fflush(stdout);
  std::fflush(stderr);
  if (before_abort_) before_abort_();
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this satisfies [[noreturn]] if it ever did
}

}  // namespace mone
