#include "trainer/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "trainer/atomic_file.h"
#include "trainer/exit_codes.h"

namespace mone {

std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string format_double(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof(text), "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

void JsonRecord::key(const std::string& name) {
  if (!body_.empty()) body_ += ", ";
  body_ += json_quote(name) + ": ";
}

JsonRecord& JsonRecord::add(const std::string& name, double value) {
  key(name);
  body_ += format_double(value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& name, int64_t value) {
  key(name);
  body_ += std::to_string(value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& name, const std::string& value) {
  key(name);
  body_ += json_quote(value);
  return *this;
}

JsonRecord& JsonRecord::add_json(const std::string& name, const std::string& json) {
  key(name);
  body_ += json;
  return *this;
}

namespace {

// The "step" of one metrics line; -1 when it has none.
int64_t step_of(const std::string& line) {
  const std::string key = "\"step\": ";
  const size_t at = line.find(key);
  return at == std::string::npos ? -1 : std::atoll(line.c_str() + at + key.size());
}

}  // namespace

MetricsLog::MetricsLog(const std::filesystem::path& path, int64_t keep_through_step) : path_(path) {
  std::string kept;
  {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && step_of(line) <= keep_through_step) kept += line + "\n";
    }
  }
  // Rewritten whole or not at all: a full disk here must not cost the
  // records of the steps the checkpoint holds.
  write_file_atomically(path, kept);
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr)
    throw SaveError("cannot write the metrics file '" + path.string() + "': " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::write(const JsonRecord& record) {
  if (std::fprintf(file_, "%s\n", record.str().c_str()) < 0 || std::fflush(file_) != 0) {
    throw SaveError("cannot write the metrics file '" + path_.string() + "': " + std::strerror(errno) + " (" +
                    byte_text(free_bytes(path_)) + " free)");
  }
}

ProgressLine::ProgressLine(int64_t first_step, int64_t total_steps, bool redraw)
    : terminal_(redraw),
      first_step_(first_step),
      total_steps_(total_steps),
      start_(std::chrono::steady_clock::now()) {}

void ProgressLine::update(int64_t step, bool logged, const std::string& text) {
  if (!terminal_) {
    if (logged) std::cout << "step " << step << "/" << total_steps_ << "  " << text << std::endl;
    return;
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = elapsed / static_cast<double>(std::max<int64_t>(1, step - first_step_));
  const int64_t eta = std::llround(per_step * static_cast<double>(total_steps_ - step));
  char eta_text[32];
  std::snprintf(eta_text, sizeof(eta_text), "%lld:%02lld:%02lld", static_cast<long long>(eta / 3600),
                static_cast<long long>(eta / 60 % 60), static_cast<long long>(eta % 60));
  std::cout << "\r\033[Kstep " << step << "/" << total_steps_ << "  " << text << "  ETA " << eta_text
            << std::flush;
  open_line_ = true;
}

void ProgressLine::break_line() {
  if (open_line_) std::cout << "\n";
  open_line_ = false;
}

}  // namespace mone
