#include "trainer/verify_command.h"

#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "trainer/checkpoint.h"
#include "trainer/exit_codes.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

// One line: "<file>: valid, step N, run R" or "<file>: <what is wrong>".
std::optional<Checkpoint> verify_one(const fs::path& file) {
  try {
    Checkpoint checkpoint = read_checkpoint(file);
    std::cout << file.string() << ": valid, step " << checkpoint.progress.step << ", "
              << checkpoint.progress.consumed_samples << " samples consumed, run "
              << (checkpoint.progress.run_id.empty() ? "(not recorded)" : checkpoint.progress.run_id) << "\n";
    return checkpoint;
  } catch (const CheckpointError& error) {
    std::cout << file.string() << ": INVALID: " << error.what() << "\n";
    return std::nullopt;
  }
}

}  // namespace

int run_verify(const std::string& checkpoint) {
  const fs::path where = checkpoint;
  if (!fs::is_directory(where)) {
    if (!fs::exists(where)) throw UsageError("--checkpoint: '" + checkpoint + "' does not exist");
    return verify_one(where) ? kExitSuccess : kExitFailure;
  }
  const CheckpointDirectory checkpoints(where);
  const std::vector<fs::path> files = checkpoints.list();
  std::optional<int64_t> resumed;
  for (auto file = files.rbegin(); file != files.rend(); ++file) {
    const std::optional<Checkpoint> valid = verify_one(*file);
    if (valid && !resumed) resumed = valid->progress.step;
  }
  if (fs::exists(checkpoints.best_path())) verify_one(checkpoints.best_path());
  if (files.empty()) {
    std::cout << "'" << checkpoint << "' holds no checkpoints\n";
    return kExitFailure;
  }
  if (!resumed) {
    std::cout << "none of the " << files.size() << " checkpoints is valid\n";
    return kExitFailure;
  }
  std::cout << "--resume auto takes step " << *resumed << "\n";
  return kExitSuccess;
}

}  // namespace mone
