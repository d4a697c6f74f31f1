// Starting every rank of a data-parallel job from the same state
// (docs/distributed.md, "Resume"): rank 0 alone looks for and reads the
// checkpoint --resume names (the other ranks may not even see the same file
// system); then it broadcasts whether it resumes, the progress, the
// parameters and, when resuming, the AdamW state. Fresh runs broadcast the
// parameters too: every rank initialises from the same seed, so this only
// guards against a rank that did not. Everything happens on the backend's
// host state; the backend receives it at the end (push_state).
#pragma once

#include "comm/communicator.h"
#include "model/config.h"
#include "trainer/checkpoint.h"
#include "trainer/run_directory.h"
#include "trainer/train_options.h"
#include "trainer/training_backend.h"

namespace mone {

// Returns the progress to continue from: the checkpoint's (world_size set to
// this run's), or step 0 with options.seed and a new run id. `run_dir` is
// rank 0's locked run directory (null on the other ranks). Rank 0 throws
// (and mone's main then ends the job) UsageError when the checkpoint's model
// differs from `model`, when it belongs to another run than the directory's
// (run-id), or when it was trained on other data (unless
// --allow-other-data); CheckpointError for an unusable checkpoint. A
// resumed run's best score is the better of the checkpoint's and best.h5's
// (after a fall back to an older checkpoint, best.h5 may be newer).
TrainingProgress start_identical_on_all_ranks(const TrainOptions& options, const ModelConfig& model,
                                              const RunDirectory* run_dir, TrainingBackend& backend,
                                              Communicator& comm);

}  // namespace mone
