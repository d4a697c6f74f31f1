#include "tests/data/test_support.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "data/error.h"

namespace mone::testing {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("mone-data-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  for (size_t got; (got = fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, got);
  result.status = pclose(pipe);
  return result;
}

Manifest write_synthetic(const std::filesystem::path& dir, const SyntheticOptions& options,
                         int64_t shard_size, int64_t validation_count) {
  ConvertOptions convert_options;
  convert_options.out = dir;
  convert_options.shard_size = shard_size;
  convert_options.validation_count = validation_count;
  convert_options.seed = options.seed;
  return convert(make_synthetic(options), convert_options);
}

std::string loader_error(const std::filesystem::path& dir, const std::string& split) {
  try {
    LoaderOptions options;
    options.dir = dir;
    options.split = split;
    options.mode = LoaderMode::eval;
    options.batch_per_rank = 16;
    Loader loader(options);
    Batch batch;
    while (loader.next(batch)) {
    }
  } catch (const DataError& error) {
    return error.what();
  }
  return "";
}

}  // namespace mone::testing
