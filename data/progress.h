// Conversion progress on stderr: a redrawn bar with rate and ETA on a
// terminal, or a plain line every few seconds when stderr is a file or pipe
// (batch jobs, CI logs).
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace mone {

enum class ProgressStyle { none, bar, lines };

// bar when stderr is a terminal, lines otherwise.
ProgressStyle progress_style_for_stderr();

class Progress {
 public:
  Progress(std::ostream& out, ProgressStyle style, int64_t total);
  void advance(int64_t done);
  void finish();

 private:
  void report(bool final);

  std::ostream& out_;
  ProgressStyle style_;
  int64_t total_;
  int64_t done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_report_;
};

}  // namespace mone
