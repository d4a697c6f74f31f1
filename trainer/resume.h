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
#include "trainer/train_options.h"
#include "trainer/training_backend.h"

namespace mone {

// Returns the progress to continue from: the checkpoint's (world_size set to
// this run's), or step 0 with options.seed. Throws UsageError when the
// checkpoint's model differs from `model`, and CheckpointError for an
// unusable checkpoint (rank 0; mone's main then ends the job).
TrainingProgress start_identical_on_all_ranks(const TrainOptions& options, const ModelConfig& model,
                                              const CheckpointDirectory& checkpoints, TrainingBackend& backend,
                                              Communicator& comm, bool root);

}  // namespace mone
