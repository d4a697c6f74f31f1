// Evaluation during training and the best-checkpoint policy: every rank
// evaluates its shard of the evaluation split at every --eval-capacities
// budget and the totals are summed across ranks; rank 0 prints them, writes
// eval/<split>-step-N.{csv,json} and a metrics record, and replaces best.h5
// when the mean top-1 over the budgets (one score for a model that serves
// many budgets) beats the best so far.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "trainer/checkpoint.h"
#include "trainer/metrics.h"
#include "trainer/train_options.h"
#include "trainer/training_backend.h"

namespace mone {

class TrainingEvaluation {
 public:
  TrainingEvaluation(const TrainOptions& options, const ModelConfig& model, std::vector<double> capacities,
                     const CheckpointDirectory& checkpoints, const std::string& config_ini);

  // Evaluates the backend's model now, at progress.step. `metrics` is rank
  // 0's log (null elsewhere: those ranks only take part in the sums).
  // progress.best_top1 and best_step follow a new best. Returns false, with
  // nothing written, when a stop signal reached any rank during it (the
  // ranks agree on that after every batch).
  bool run(TrainingBackend& backend, Communicator& comm, TrainingProgress& progress, MetricsLog* metrics,
           ProgressLine& line);
  // Whether the report of `step` is in the run directory (rank 0).
  bool reported(int64_t step) const;

 private:
  const TrainOptions& options_;
  ModelConfig model_;
  std::vector<double> capacities_;
  const CheckpointDirectory& checkpoints_;
  const std::string& config_ini_;
  std::string split_;
};

}  // namespace mone
