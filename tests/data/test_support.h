// Shared helpers of the data tests: temporary directories and small
// synthetic datasets written through the real converter.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/convert.h"
#include "data/loader.h"

// Passes when `text` contains `part`; prints both otherwise.
#define EXPECT_CONTAINS(text, part)                                                    \
  EXPECT_NE(std::string(text).find(part), std::string::npos)                           \
      << "expected to find \"" << (part) << "\" in \"" << (text) << "\""

namespace mone::testing {

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Converts make_synthetic(options) into `dir` with the given shard size and
// validation count; returns the manifest.
Manifest write_synthetic(const std::filesystem::path& dir, const SyntheticOptions& options,
                         int64_t shard_size, int64_t validation_count = 0);

struct CommandResult {
  int status = -1;     // as pclose returns it: 0 on success
  std::string output;  // stdout and stderr together
};
// Runs a shell command line.
CommandResult run_command(const std::string& command);

// Runs an evaluation loader over the split to the end; returns the DataError
// message, or "" when every shard opened and read cleanly.
std::string loader_error(const std::filesystem::path& dir, const std::string& split);

}  // namespace mone::testing
