// The guards of a run directory (docs/trainer.md, "Run directory"):
//  - one training at a time: rank 0 holds an exclusive flock on
//    <run-dir>/lock for the whole run; the kernel drops it however the
//    process ends (a SIGKILLed run leaves no stale lock), and a second start
//    is refused with the first one's host and pid;
//  - one run per directory: <run-dir>/run-id names the run its checkpoints
//    belong to, and a start that would mix a new run into an earlier one's
//    files is refused unless --overwrite moves the earlier run aside.
#pragma once

#include <filesystem>
#include <string>

namespace mone {

class RunDirectory {
 public:
  // Creates the directory and takes the lock; throws UsageError naming
  // --run-dir when another process holds it or the directory is not writable.
  explicit RunDirectory(const std::filesystem::path& dir);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::filesystem::path& path() const { return dir_; }
  // Whether an earlier run left checkpoints here (step-N.h5 or best.h5).
  bool holds_checkpoints() const;
  // Renames the directory to <dir>.replaced-<UTC date and time> in one
  // rename, then makes and locks a new, empty one. Returns the new name of the old.
  std::filesystem::path move_earlier_run_aside();

  // The run this directory holds ("" when it has no run-id file yet).
  std::string run_id() const;
  void write_run_id(const std::string& id) const;

 private:
  void lock();
  std::filesystem::path dir_;
  int lock_fd_ = -1;
};

// A new run's identity: 16 hex digits from the clock, the host and a random device.
std::string new_run_id();

}  // namespace mone
