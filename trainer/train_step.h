// One optimizer step of `mone train` on every rank: the step's routing
// plan and learning rate, a micro-step per micro-batch, the gradients
// averaged over the ranks, the loss and stop flag agreed, clipping and the
// update. A non-finite loss or gradient norm stops the run before the update.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "data/loader.h"
#include "model/config.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/lr_schedule.h"
#include "trainer/train_options.h"
#include "trainer/training_backend.h"

namespace mone {

struct StepResult {
  double loss = 0;
  double capacity = 0;           // requested e_c of the step's last pass
  double realised_capacity = 0;  // after flooring
  double forward_flops_per_image = 0;  // summed over the step's passes
  double lr = 0;
  double grad_norm = 0;          // before clipping
  double data_wait_ms = 0;       // mean over the ranks
  bool stop = false;             // some rank was asked to stop: all stop after this step
};

class TrainingStep {
 public:
  // `checkpoints` only names the newest checkpoint when a step diverges.
  TrainingStep(const TrainOptions& options, const ModelConfig& model, CapacitySchedule capacity,
               TrainingBackend& backend, Communicator& comm, const CheckpointDirectory& checkpoints);

  // Step `step` (0-based) of the run seeded `seed`. Throws DivergedError
  // (nothing updated) for a non-finite loss or gradient norm.
  StepResult run(Loader& loader, int64_t step, uint64_t seed);

 private:
  std::vector<TrainingPass> passes(int64_t step, uint64_t seed) const;

  const TrainOptions& options_;
  ModelConfig model_;
  LrSchedule lr_;
  CapacitySchedule capacity_;
  TrainingBackend& backend_;
  Communicator& comm_;
  const CheckpointDirectory& checkpoints_;
  Batch batch_;
};

}  // namespace mone
