#include "trainer/train_step.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "comm/host_values.h"
#include "model/random.h"
#include "model/routing_plan.h"
#include "trainer/exit_codes.h"
#include "trainer/metrics.h"
#include "trainer/signals.h"

namespace mone {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void diverged(int64_t step, const char* what, double value, double capacity, double lr,
                           const CheckpointDirectory& checkpoints) {
  const std::vector<std::filesystem::path> saved = checkpoints.list();
  const std::string value_text = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  throw DivergedError("step " + std::to_string(step) + ": the " + what + " is " + value_text +
                      " (e_c " + format_double(capacity) + ", lr " + format_double(lr) +
                      "); stopped without updating the parameters. " +
                      (saved.empty() ? std::string("No checkpoint was written yet")
                                     : "The newest checkpoint is intact: " + saved.back().string()) +
                      ". Try a lower --lr or a longer --warmup.");
}

}  // namespace

TrainingStep::TrainingStep(const TrainOptions& options, const ModelConfig& model, CapacitySchedule capacity,
                           TrainingBackend& backend, Communicator& comm, const CheckpointDirectory& checkpoints)
    : options_(options),
      model_(model),
      lr_{options.lr, options.min_lr, options.warmup, options.steps},
      capacity_(std::move(capacity)),
      backend_(backend),
      comm_(comm),
      checkpoints_(checkpoints) {}

// The step's passes: the schedule's, and with --distill a first pass at
// e_c = 1 (unless the schedule starts there) that the others learn from.
std::vector<TrainingPass> TrainingStep::passes(int64_t step, uint64_t seed) const {
  std::vector<double> capacities = capacity_.passes(seed, step);
  if (options_.distill && capacities.front() != 1.0) capacities.insert(capacities.begin(), 1.0);
  std::vector<TrainingPass> result;
  for (const double capacity : capacities) {
    const uint64_t key = mix64(seed ^ mix64(static_cast<uint64_t>(step) * 64 + result.size() + 1));
    result.push_back({plan_routing(model_, capacity), options_.distill && !result.empty(), key});
  }
  return result;
}

StepResult TrainingStep::run(Loader& loader, int64_t step, uint64_t seed) {
  StepResult result;
  const std::vector<TrainingPass> step_passes = passes(step, seed);
  const RoutingPlan& plan = step_passes.back().plan;  // the one the log names: the drawn e_c
  result.capacity = plan.requested_capacity;
  result.realised_capacity = plan.realised_capacity;
  for (const TrainingPass& pass : step_passes) result.forward_flops_per_image += pass.plan.forward_flops_per_image;
  result.lr = lr_.at(step);
  const std::string context = "step " + std::to_string(step + 1);
  backend_.begin_step(context);
  for (int64_t micro = 0; micro < options_.accumulate; ++micro) {
    const Clock::time_point wait = Clock::now();
    loader.next(batch_);
    result.data_wait_ms += std::chrono::duration<double, std::milli>(Clock::now() - wait).count();
    backend_.micro_step(batch_, step_passes, micro + 1 == options_.accumulate);
  }
  result.loss = backend_.finish_gradients();  // the gradients are now the mean over all ranks' samples
  // The step's loss and data wait averaged over the ranks (equal batches, so
  // the mean of means is the global mean), and the stop flag: every rank
  // learns at the same step whether any rank was asked to stop.
  std::vector<double> shared = {result.loss / static_cast<double>(options_.accumulate), result.data_wait_ms,
                                stop_requested() ? 1.0 : 0.0};
  sum_over_ranks(comm_, shared, context + " loss and stop flag");
  const double ranks = static_cast<double>(options_.world);
  result.loss = shared[0] / ranks;
  result.data_wait_ms = shared[1] / ranks;
  result.stop = shared[2] > 0;
  if (!std::isfinite(result.loss)) diverged(step + 1, "loss", result.loss, result.capacity, result.lr, checkpoints_);
  result.grad_norm = backend_.clip_gradients(options_.clip);
  if (!std::isfinite(result.grad_norm)) {
    diverged(step + 1, "gradient norm", result.grad_norm, result.capacity, result.lr, checkpoints_);
  }
  backend_.update(result.lr);
  return result;
}

}  // namespace mone
