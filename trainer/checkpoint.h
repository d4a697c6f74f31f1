// Checkpoints (docs/trainer.md, "Checkpoints"): one HDF5 file per checkpoint
// with every parameter by name, the AdamW state, the training position and
// the full configuration. Written atomically; verified by a CRC-32 on load.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/adamw.h"
#include "model/config.h"
#include "model/parameters.h"

namespace mone {

// 2: the checksum covers the header (every attribute) as well as the state,
// and the run and dataset identities are recorded. Version 1 is still read.
constexpr int64_t kCheckpointVersion = 2;

// A checkpoint that is missing, unreadable, fails verification, or does not
// fit the run; the message names the file and the reason.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where training stands. Everything random is counter-based, so the seed and
// the step are the whole RNG state; consumed_samples is the loader position.
struct TrainingProgress {
  int64_t step = 0;              // optimizer steps completed
  int64_t epoch = 0;             // consumed_samples / training samples
  int64_t consumed_samples = 0;  // samples of the global stream consumed
  int64_t world_size = 1;        // ranks at save time
  uint64_t seed = 0;
  // The best validation score so far (mean top-1 over --eval-capacities) and
  // its step; best_step 0: no evaluation yet.
  double best_top1 = 0;
  int64_t best_step = 0;
  // Which run this is (made at its first step; a resumed run keeps it), so a
  // run never continues from another run's files; and the dataset it trains
  // on (dataset_identity), so a resume on other data is noticed. Empty in
  // version-1 checkpoints.
  std::string run_id;
  std::string dataset;
};

struct Checkpoint {
  ModelConfig model;
  TrainingProgress progress;
  std::string config;  // the effective configuration, config.ini text
  int64_t optimizer_step = 0;
  // In the layout of ParameterSet<float>(model).
  std::vector<float> values;
  std::vector<float> first_moment;
  std::vector<float> second_moment;
};

// Writes `path` atomically (trainer/atomic_file.h): the file is built in
// memory, then written through a temporary name. Throws SaveError (a full
// disk: the temporary file removed, `path` as it was).
void write_checkpoint(const std::filesystem::path& path, const ModelConfig& model,
                      const ParameterSet<float>& params, const AdamW& optimizer,
                      const TrainingProgress& progress, const std::string& config);

// Reads and verifies (format, version, every tensor's shape, and the
// checksum over every header attribute and the whole state).
Checkpoint read_checkpoint(const std::filesystem::path& path);

// An upper bound of the bytes of a checkpoint of `params`' model with
// `config` (about 20% above for `tiny`, less for larger models): what must
// be free to save one.
uint64_t checkpoint_bytes(const ParameterSet<float>& params, const std::string& config);

// "dim: checkpoint 32, this run 64" for each differing model field.
std::vector<std::string> model_differences(const ModelConfig& checkpoint, const ModelConfig& run);

// The checkpoints of one run: <run>/checkpoints/step-<8 digits>.h5, and
// best.h5, the state at the best validation score (never pruned, never
// resumed from automatically).
class CheckpointDirectory {
 public:
  explicit CheckpointDirectory(const std::filesystem::path& run_dir);
  std::filesystem::path path_for(int64_t step) const;
  // Checkpoint files, oldest (lowest step) first.
  std::vector<std::filesystem::path> list() const;
  std::filesystem::path best_path() const;
  // Writes the checkpoint of progress.step, then removes all but the newest `keep`.
  std::filesystem::path save(const ModelConfig& model, const ParameterSet<float>& params,
                             const AdamW& optimizer, const TrainingProgress& progress,
                             const std::string& config, int64_t keep) const;
  // Replaces best.h5 (atomically, like every checkpoint).
  std::filesystem::path save_best(const ModelConfig& model, const ParameterSet<float>& params,
                                  const AdamW& optimizer, const TrainingProgress& progress,
                                  const std::string& config) const;
  // The newest checkpoint that reads and verifies; each broken newer one is
  // skipped with a warning on `warnings`. Empty when there are none at all;
  // throws CheckpointError when there are some but none is usable.
  std::optional<Checkpoint> newest_valid(std::ostream& warnings) const;

 private:
  std::filesystem::path dir_;
};

// What `--checkpoint FILE|RUN_DIR` names: a file is read as is, a run
// directory gives its newest valid checkpoint (warnings as newest_valid).
// Throws CheckpointError.
Checkpoint read_checkpoint_or_newest(const std::filesystem::path& file_or_run_dir, std::ostream& warnings);

}  // namespace mone
