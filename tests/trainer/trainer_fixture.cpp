#include "tests/trainer/trainer_fixture.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

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

ProcessResult run_mone(const std::vector<std::string>& args, const std::function<void(pid_t)>& while_running) {
  static int counter = 0;
  const fs::path out = fs::temp_directory_path() / ("mone-test-" + std::to_string(getpid()) + "-" +
                                                    std::to_string(++counter));
  const std::string out_path = out.string() + ".out", err_path = out.string() + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_text = {MONE_TOOL};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_text) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, MONE_TOOL, &actions, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot start " + std::string(MONE_TOOL));
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

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace mone::testing
