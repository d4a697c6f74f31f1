// `mone train`: the training loop of one rank of a data-parallel job
// (docs/distributed.md); world size 1 without a launcher.
#pragma once

#include <string>

#include "comm/world.h"
#include "model/config.h"
#include "trainer/option_table.h"
#include "trainer/train_options.h"

namespace mone {

// Trains until options.steps, resuming as options.resume says. `table` holds
// the effective configuration: printed once the run's settings are checked,
// written to <run-dir>/config.ini and into every checkpoint. Returns kExitSuccess, or kExitStopped after a stop
// signal and a checkpoint. Throws UsageError, DivergedError (nothing saved
// for the bad step), CheckpointError and the data layer's DataError.
int run_training(const TrainOptions& options, const ModelConfig& model, const OptionTable& table,
                 const World& world);

}  // namespace mone
