// Training metrics: metrics.jsonl in the run directory (one JSON object per
// line: a "train" record per logged step, an "eval" record per evaluation)
// and the human-readable progress on stdout.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace mone {

// One flat JSON object built field by field. Doubles are written with 17
// significant digits so a loss read back is the bits that were logged.
class JsonRecord {
 public:
  JsonRecord& add(const std::string& key, double value);
  JsonRecord& add(const std::string& key, int64_t value);
  JsonRecord& add(const std::string& key, const std::string& value);
  // `json` is already valid JSON (an array or object).
  JsonRecord& add_json(const std::string& key, const std::string& json);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& name);
  std::string body_;
};

std::string json_quote(const std::string& text);
// Shortest decimal text that reads back as the same double ("0.1", "1e-05");
// "NaN"/"Infinity" are not JSON, so non-finite values become null.
std::string format_double(double value);

class MetricsLog {
 public:
  // Opens `path` for appending. Records with "step" > keep_through_step are
  // dropped first: after a resume the file continues from the checkpoint,
  // not from whatever a killed run logged past it.
  MetricsLog(const std::filesystem::path& path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // Appends one line and flushes it, so a reader sees every finished step.
  void write(const JsonRecord& record);

 private:
  std::FILE* file_ = nullptr;
  std::filesystem::path path_;
};

// The progress of training on stdout. On a terminal one line rewritten with
// '\r' every step, with an ETA; otherwise one plain line per logged step.
class ProgressLine {
 public:
  // redraw: one line rewritten in place with an ETA (a terminal); otherwise
  // one plain line per --log-every step (log files, Slurm).
  ProgressLine(int64_t first_step, int64_t total_steps, bool redraw);
  // `step` just finished (1-based); `logged` says whether it is a --log-every step.
  void update(int64_t step, bool logged, const std::string& text);
  // Ends the '\r' line before other output.
  void break_line();

 private:
  bool terminal_;
  bool open_line_ = false;
  int64_t first_step_;
  int64_t total_steps_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace mone
