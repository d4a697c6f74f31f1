// The exit codes of `mone` (docs/trainer.md, "Exit codes"). Schedulers and
// scripts act on them: 75 means "requeue me, I will resume".
#pragma once

#include <stdexcept>

namespace mone {

constexpr int kExitSuccess = 0;
constexpr int kExitFailure = 1;   // an error (bad data, I/O, a broken checkpoint...)
constexpr int kExitUsage = 2;     // invalid command line or config file
constexpr int kExitDiverged = 3;  // non-finite loss or gradient; the last checkpoint is intact
constexpr int kExitSaveFailed = 74;  // EX_IOERR: a checkpoint or run file could not be written (disk full...)
constexpr int kExitStopped = 75;  // EX_TEMPFAIL: stopped by a signal after a checkpoint; resumable

// An invalid option or option value; the message names the option.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file the run must write (a checkpoint, config.ini, metrics.jsonl) could
// not be written: a full disk, a quota, an I/O error. The message names the
// file, and on a full disk the bytes needed and free; nothing half-written
// is left behind.
struct SaveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Training produced a non-finite loss or gradient norm; the message names the step.
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace mone
