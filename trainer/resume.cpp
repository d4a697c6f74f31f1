#include "trainer/resume.h"

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "comm/host_values.h"
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
                              TrainingBackend& backend) {
  require_same_model(checkpoint, model);
  ParameterSet<float>& params = backend.parameters();
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), params.values());
  if (checkpoint.progress.seed != options.seed) {
    std::cerr << "warning: --seed " << options.seed << " differs from the checkpoint's " << checkpoint.progress.seed
              << "; continuing with the checkpoint's so the data order and capacities stay the run's\n";
  }
  TrainingProgress progress = checkpoint.progress;
  progress.world_size = options.world;
  std::cout << "resuming at step " << progress.step << " (" << progress.consumed_samples << " samples consumed)\n";
  return progress;
}

}  // namespace

TrainingProgress start_identical_on_all_ranks(const TrainOptions& options, const ModelConfig& model,
                                              const CheckpointDirectory& checkpoints, TrainingBackend& backend,
                                              Communicator& comm, bool root) {
  TrainingProgress progress;
  progress.world_size = options.world;
  progress.seed = options.seed;
  std::optional<Checkpoint> checkpoint;
  ResumeHeader header;
  if (root) {
    checkpoint = checkpoint_to_resume(options, checkpoints);
    if (checkpoint) {
      progress = load_on_root(*checkpoint, options, model, backend);
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
  if (root) {
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
