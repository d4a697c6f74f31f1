#include "tests/trainer/trainer_fixture.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "data/convert.h"
#include "data/sources.h"

extern char** environ;

namespace mone::testing {

namespace fs = std::filesystem;

TrainerFixture::TrainerFixture() {
  std::string pattern = (fs::temp_directory_path() / "mone-trainer-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = pattern;
  SyntheticOptions synthetic;
  synthetic.train_count = 256;
  synthetic.test_count = 64;
  synthetic.seed = 3;
  ConvertOptions convert_options;
  convert_options.out = data();
  convert_options.shard_size = 128;
  convert_options.validation_count = 64;
  convert(make_synthetic(synthetic), convert_options);
}

TrainerFixture::~TrainerFixture() {
  std::error_code ignored;
  fs::remove_all(root_, ignored);
}

std::vector<std::string> small_run(const TrainerFixture& fixture, const std::string& run_dir) {
  return {"train",      "--data",  fixture.data().string(), "--run-dir", (fixture.root() / run_dir).string(),
          "--dim",      "32",      "--depth",               "2",         "--heads",
          "2",          "--batch", "16",                    "--threads", "1",
          "--warmup",   "2",       "--log-every",           "1",         "--eval-capacities",
          "0.5,1"};
}

std::vector<std::string> small_vmoe_run(const TrainerFixture& fixture, const std::string& run_dir) {
  const fs::path superclasses = fixture.root() / "superclasses.txt";
  std::ofstream file(superclasses);
  for (int c = 0; c < 10; ++c) file << c << " " << c % 3 << "\n";
  return with(small_run(fixture, run_dir), {"--arch", "vmoe", "--moe-blocks", "1", "--top-k", "2", "--superclasses",
                                            superclasses.string(), "--capacity", "fixed:1", "--eval-capacities", "1"});
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& options) {
  for (size_t i = 0; i < options.size(); ++i) {
    const bool has_value = i + 1 < options.size() && options[i + 1].rfind("--", 0) != 0;
    const auto present = std::find(args.begin(), args.end(), options[i]);
    if (present != args.end() && has_value && present + 1 != args.end()) {
      *(present + 1) = options[i + 1];
    } else {
      args.push_back(options[i]);
      if (has_value) args.push_back(options[i + 1]);
    }
    if (has_value) ++i;
  }
  return args;
}

namespace {
std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

namespace {
// Runs argv_text[0] with its arguments, capturing stdout and stderr.
ProcessResult run_process(std::vector<std::string> argv_text, const std::function<void(pid_t)>& while_running) {
  static int counter = 0;
  const fs::path out = fs::temp_directory_path() / ("mone-test-" + std::to_string(getpid()) + "-" +
                                                    std::to_string(++counter));
  const std::string out_path = out.string() + ".out", err_path = out.string() + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot start " + argv_text[0]);
  }
  posix_spawn_file_actions_destroy(&actions);
  if (while_running) while_running(pid);
  int status = 0;
  waitpid(pid, &status, 0);
  ProcessResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return result;
}
}  // namespace

std::string mone_tool() {
  const char* other = std::getenv("MONE_TEST_TOOL");
  return other != nullptr && *other != '\0' ? other : MONE_TOOL;
}

ProcessResult run_command(const std::vector<std::string>& argv, const std::function<void(pid_t)>& while_running) {
  return run_process(argv, while_running);
}

ProcessResult run_mone(const std::vector<std::string>& args, const std::function<void(pid_t)>& while_running) {
  std::vector<std::string> argv_text = {mone_tool()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  return run_process(argv_text, while_running);
}

ProcessResult run_mone_ranks(int ranks, const std::vector<std::string>& args,
                             const std::function<void(pid_t)>& while_running) {
  // Open MPI refuses to start as root (CI containers) without both; the
  // distributed tests run under mpirun with the same two set by CTest.
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  std::vector<std::string> argv_text = {MONE_MPIEXEC, "-np", std::to_string(ranks), "--oversubscribe", mone_tool()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  return run_process(argv_text, while_running);
}

pid_t rank_pid(pid_t mpirun, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after the last ')'.
    const std::string stat = slurp(entry.path() / "stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent != mpirun) continue;
    std::string environment = slurp(entry.path() / "environ");
    std::replace(environment.begin(), environment.end(), '\0', '\n');
    if (("\n" + environment).find("\n" + wanted + "\n") != std::string::npos) return std::stoi(name);
  }
  return -1;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string metrics_field(const std::string& line, const std::string& key) {
  const std::string marker = "\"" + key + "\": ";
  const size_t begin = line.find(marker);
  if (begin == std::string::npos) return "";
  const size_t from = begin + marker.size();
  return line.substr(from, line.find_first_of(",}", from) - from);
}

std::map<int64_t, std::string> trajectory(const fs::path& run) {
  std::map<int64_t, std::string> steps;
  for (const std::string& line : read_lines(run / "metrics.jsonl")) {
    if (metrics_field(line, "type") != "\"train\"") continue;
    steps[std::stoll(metrics_field(line, "step"))] = metrics_field(line, "loss") + " " + metrics_field(line, "lr") +
                                                     " " + metrics_field(line, "e_c") + " " +
                                                     metrics_field(line, "grad_norm");
  }
  return steps;
}

int64_t last_logged_step(const fs::path& metrics) {
  int64_t step = 0;
  for (const std::string& line : read_lines(metrics)) {
    const std::string value = metrics_field(line, "step");
    if (!value.empty()) step = std::max<int64_t>(step, std::stoll(value));
  }
  return step;
}

void wait_until_logged(const fs::path& metrics, int64_t step, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (last_logged_step(metrics) < step && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace mone::testing
