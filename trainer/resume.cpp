#include "trainer/resume.h"

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "comm/host_values.h"
#include "data/dataset.h"
#include "trainer/exit_codes.h"

namespace mone {

namespace {

// The checkpoint --resume asks for: auto (the newest valid one, if any),
// none, or a path.
std::optional<Checkpoint> checkpoint_to_resume(const TrainOptions& options, const CheckpointDirectory& checkpoints) {
  if (options.resume == "none") return std::nullopt;
  if (options.resume == "auto") return checkpoints.newest_valid(std::cerr);
  return read_checkpoint(options.resume);
}

// A run continues only its own files: the checkpoint must carry the run id
// of the directory it continues in (version-1 checkpoints carry none).
void require_same_run(const Checkpoint& checkpoint, const TrainOptions& options, const RunDirectory& run_dir) {
  const std::string ours = run_dir.run_id();
  const std::string& theirs = checkpoint.progress.run_id;
  if (theirs.empty() || ours.empty() || theirs == ours) return;
  if (options.resume == "auto") {
    throw UsageError("--resume auto: the newest checkpoint in '" + run_dir.path().string() + "' (step " +
                     std::to_string(checkpoint.progress.step) + ") belongs to run " + theirs +
                     ", but the directory's run is " + ours +
                     " (run-id); move that file away, or start over with --resume none --overwrite");
  }
  if (run_dir.holds_checkpoints()) {
    throw UsageError("--resume: '" + options.resume + "' belongs to run " + theirs + ", but --run-dir '" +
                     run_dir.path().string() + "' holds the checkpoints of run " + ours +
                     "; continue it in a new --run-dir");
  }
}

// The data must be the data the checkpoint was trained on, unless the user
// says otherwise; then the best score so far (on the other data) no longer
// counts.
void require_same_data(TrainingProgress& progress, const TrainOptions& options, const std::string& ours) {
  const std::string theirs = progress.dataset;
  progress.dataset = ours;
  if (theirs.empty() || theirs == ours) return;
  if (!options.allow_other_data) {
    throw UsageError("--data: '" + options.data + "' (" + ours +
                     ") is not the dataset the checkpoint was trained on (" + theirs +
                     "); pass --allow-other-data if that is intended (fine-tuning)");
  }
  std::cerr << "warning: --allow-other-data: resuming on other data (" << ours << "; the checkpoint's: " << theirs
            << "); the next evaluation starts a new best.h5\n";
  progress.best_top1 = 0;
  progress.best_step = 0;
}

// After a fall back past a broken checkpoint, best.h5 may hold a better
// score than the checkpoint resumed: it is kept unless beaten.
void adopt_best_of_this_run(TrainingProgress& progress, const CheckpointDirectory& checkpoints) {
  if (!std::filesystem::exists(checkpoints.best_path())) return;
  try {
    const Checkpoint best = read_checkpoint(checkpoints.best_path());
    if (best.progress.run_id == progress.run_id && best.progress.dataset == progress.dataset &&
        best.progress.best_top1 > progress.best_top1) {
      progress.best_top1 = best.progress.best_top1;
      progress.best_step = best.progress.best_step;
    }
  } catch (const CheckpointError& error) {
    std::cerr << "warning: " << error.what() << "; the next evaluation replaces it\n";
  }
}

void require_same_model(const Checkpoint& checkpoint, const ModelConfig& model) {
  const std::vector<std::string> differences = model_differences(checkpoint.model, model);
  if (differences.empty()) return;
  std::string message = "the checkpoint to resume (step " + std::to_string(checkpoint.progress.step) +
                        ") has a different model than this run's options:";
  for (const std::string& difference : differences) message += "\n  " + difference;
  throw UsageError(message + "\nuse the checkpoint's model options, or --resume none to start over");
}

// What rank 0 broadcasts before training: whether it resumes, and from where.
// Plain int64 fields so it travels as bytes (comm/host_values.h).
struct ResumeHeader {
  int64_t resumed = 0;
  int64_t step = 0, epoch = 0, consumed_samples = 0, saved_world_size = 1;
  int64_t optimizer_step = 0;
  uint64_t seed = 0;
};

// Rank 0: the checkpoint's parameters and progress (the AdamW state follows
// in start_identical_on_all_ranks, on every rank).
TrainingProgress load_on_root(const Checkpoint& checkpoint, const TrainOptions& options, const ModelConfig& model,
                              const RunDirectory& run_dir, const std::string& dataset, TrainingBackend& backend) {
  require_same_model(checkpoint, model);
  require_same_run(checkpoint, options, run_dir);
  ParameterSet<float>& params = backend.parameters();
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), params.values());
  if (checkpoint.progress.seed != options.seed) {
    std::cerr << "warning: --seed " << options.seed << " differs from the checkpoint's " << checkpoint.progress.seed
              << "; continuing with the checkpoint's so the data order and capacities stay the run's\n";
  }
  TrainingProgress progress = checkpoint.progress;
  progress.world_size = options.world;
  if (progress.run_id.empty()) progress.run_id = run_dir.run_id().empty() ? new_run_id() : run_dir.run_id();
  require_same_data(progress, options, dataset);
  adopt_best_of_this_run(progress, CheckpointDirectory(run_dir.path()));
  std::cout << "resuming at step " << progress.step << " (" << progress.consumed_samples << " samples consumed)\n";
  return progress;
}

}  // namespace

TrainingProgress start_identical_on_all_ranks(const TrainOptions& options, const ModelConfig& model,
                                              const RunDirectory* run_dir, TrainingBackend& backend,
                                              Communicator& comm) {
  TrainingProgress progress;
  progress.world_size = options.world;
  progress.seed = options.seed;
  std::optional<Checkpoint> checkpoint;
  ResumeHeader header;
  if (run_dir) {
    progress.run_id = new_run_id();
    progress.dataset = dataset_identity(read_manifest(options.data));
    checkpoint = checkpoint_to_resume(options, CheckpointDirectory(run_dir->path()));
    if (checkpoint) {
      progress = load_on_root(*checkpoint, options, model, *run_dir, progress.dataset, backend);
      header = {1, progress.step, progress.epoch, progress.consumed_samples, checkpoint->progress.world_size,
                checkpoint->optimizer_step, progress.seed};
    }
  }
  broadcast_bytes(comm, &header, sizeof(header), 0, "resume header");
  ParameterSet<float>& params = backend.parameters();
  const size_t numel = static_cast<size_t>(params.numel());
  comm.broadcast(params.values(), numel, ElementType::float32, 0, "parameter broadcast");
  if (!header.resumed) {
    backend.push_state();
    return progress;
  }
  progress.step = header.step;
  progress.epoch = header.epoch;
  progress.consumed_samples = header.consumed_samples;
  progress.seed = header.seed;
  std::vector<float> first_moment(numel), second_moment(numel);
  if (run_dir) {
    first_moment = checkpoint->first_moment;
    second_moment = checkpoint->second_moment;
  }
  comm.broadcast(first_moment.data(), numel, ElementType::float32, 0, "AdamW first moment broadcast");
  comm.broadcast(second_moment.data(), numel, ElementType::float32, 0, "AdamW second moment broadcast");
  backend.optimizer().restore(header.optimizer_step, std::move(first_moment), std::move(second_moment));
  backend.push_state();
  if (header.saved_world_size != options.world) {
    std::cout << "the checkpoint was saved by " << header.saved_world_size << " ranks, this run has "
              << options.world << ": the global sample sequence continues at sample " << header.consumed_samples
              << "\n";
  }
  return progress;
}

}  // namespace mone
