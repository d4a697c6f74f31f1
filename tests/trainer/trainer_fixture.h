// Shared by the trainer tests: a temporary directory with a small synthetic
// dataset (28x28x1, 10 classes, 192 train / 64 val / 64 test samples), and
// running the `mone` executable as a child process.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mone::testing {

class TrainerFixture {
 public:
  TrainerFixture();
  ~TrainerFixture();
  TrainerFixture(const TrainerFixture&) = delete;
  TrainerFixture& operator=(const TrainerFixture&) = delete;

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path data() const { return root_ / "data"; }

 private:
  std::filesystem::path root_;
};

struct ProcessResult {
  int exit_code = -1;  // -signal when killed by a signal
  std::string out;
  std::string err;
};

// The model and run options every test uses, small enough for ~10 ms steps
// on one thread: D 32, depth 2, 2 heads, batch 16.
std::vector<std::string> small_run(const TrainerFixture& fixture, const std::string& run_dir);

// `args` with each "--name value" of `options` set: replaced where `args`
// has the option already, appended otherwise.
std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& options);

// Runs `mone args...`; `while_running(pid)` (if given) is called once the
// child has started and before waiting for it.
ProcessResult run_mone(const std::vector<std::string>& args,
                       const std::function<void(pid_t)>& while_running = nullptr);

// The lines of a text file.
std::vector<std::string> read_lines(const std::filesystem::path& path);

}  // namespace mone::testing
