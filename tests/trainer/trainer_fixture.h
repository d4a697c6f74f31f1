// Shared by the trainer tests: a temporary directory with a small synthetic
// dataset (28x28x1, 10 classes, 192 train / 64 val / 64 test samples), and
// running the `mone` executable as a child process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <cstdint>
#include <functional>
#include <map>
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
// The same as Mobile V-MoE: 3 experts in the last block, top-2, with the
// super-class loss of a file it writes into the fixture (class c in
// super-class c % 3 of the synthetic dataset's 10).
std::vector<std::string> small_vmoe_run(const TrainerFixture& fixture, const std::string& run_dir);

// `args` with each "--name value" of `options` set: replaced where `args`
// has the option already, appended otherwise.
std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& options);

// The `mone` the tests run: this build's, or the one MONE_TEST_TOOL names
// (to show that a test fails on an older build).
std::string mone_tool();

// Runs argv[0] (a path) with its arguments, as run_mone does.
ProcessResult run_command(const std::vector<std::string>& argv,
                          const std::function<void(pid_t)>& while_running = nullptr);

// Runs `mone args...`; `while_running(pid)` (if given) is called once the
// child has started and before waiting for it.
ProcessResult run_mone(const std::vector<std::string>& args,
                       const std::function<void(pid_t)>& while_running = nullptr);

// Runs `mpirun -np ranks --oversubscribe mone args...`; `while_running` gets
// mpirun's pid (rank_pid finds a rank's). As root, Open MPI needs
// OMPI_ALLOW_RUN_AS_ROOT* in the environment (CTest sets them).
ProcessResult run_mone_ranks(int ranks, const std::vector<std::string>& args,
                             const std::function<void(pid_t)>& while_running = nullptr);

// The pid of rank `rank` among mpirun's children (Open MPI starts local ranks
// as its direct children, with OMPI_COMM_WORLD_RANK in their environment);
// -1 if there is none (yet).
pid_t rank_pid(pid_t mpirun, int rank);

// The lines of a text file.
std::vector<std::string> read_lines(const std::filesystem::path& path);

// The value text of `key` in one metrics.jsonl line ("" if absent).
std::string metrics_field(const std::string& line, const std::string& key);
// step -> "loss lr e_c grad_norm" of every train record of <run>/metrics.jsonl:
// what a resumed or repeated run must reproduce.
std::map<int64_t, std::string> trajectory(const std::filesystem::path& run);
// The highest "step" in a metrics file (0 if none).
int64_t last_logged_step(const std::filesystem::path& metrics);
// Waits until the metrics file logs step `step` or later, or `timeout` passes.
void wait_until_logged(const std::filesystem::path& metrics, int64_t step, std::chrono::seconds timeout);

}  // namespace mone::testing
