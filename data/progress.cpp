#include "data/progress.h"

#include <unistd.h>

#include <cstdio>

namespace mone {

namespace {

std::string duration(double seconds) {
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  return text;
}

}  // namespace

ProgressStyle progress_style_for_stderr() {
  return isatty(STDERR_FILENO) ? ProgressStyle::bar : ProgressStyle::lines;
}

Progress::Progress(std::ostream& out, ProgressStyle style, int64_t total)
    : out_(out), style_(style), total_(total), start_(std::chrono::steady_clock::now()),
      last_report_(start_) {}

void Progress::advance(int64_t done) {
  done_ += done;
  const auto now = std::chrono::steady_clock::now();
  // Redraw a bar often enough to look live; print lines rarely enough to keep logs short.
  const auto interval = style_ == ProgressStyle::bar ? std::chrono::milliseconds(200)
                                                     : std::chrono::milliseconds(5000);
  if (now - last_report_ >= interval) {
    last_report_ = now;
    report(false);
  }
}

void Progress::finish() { report(true); }

void Progress::report(bool final) {
  if (style_ == ProgressStyle::none) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  const std::string eta = rate > 0 ? duration((total_ - done_) / rate) : "?";
  char numbers[160];
  std::snprintf(numbers, sizeof numbers, "%3.0f%% %lld/%lld samples, %.0f/s, %s %s", 100 * fraction,
                static_cast<long long>(done_), static_cast<long long>(total_), rate,
                final ? "took" : "ETA", final ? duration(elapsed).c_str() : eta.c_str());
  if (style_ == ProgressStyle::bar) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    out_ << "\r[" << std::string(static_cast<size_t>(filled), '#')
         << std::string(static_cast<size_t>(kWidth - filled), ' ') << "] " << numbers
         << (final ? "\n" : "") << std::flush;
  } else {
    out_ << "mone-data: " << numbers << "\n" << std::flush;
  }
}

}  // namespace mone
