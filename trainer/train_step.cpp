#include "trainer/train_step.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "comm/host_values.h"
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

StepResult TrainingStep::run(Loader& loader, int64_t step, uint64_t seed) {
  StepResult result;
  const RoutingPlan plan = plan_routing(model_, capacity_.at(seed, step));
  result.capacity = plan.requested_capacity;
  result.realised_capacity = plan.realised_capacity;
  result.lr = lr_.at(step);
  const std::string context = "step " + std::to_string(step + 1);
  backend_.begin_step(context);
  for (int64_t micro = 0; micro < options_.accumulate; ++micro) {
    const Clock::time_point wait = Clock::now();
    loader.next(batch_);
    result.data_wait_ms += std::chrono::duration<double, std::milli>(Clock::now() - wait).count();
    backend_.micro_step(batch_, plan, micro + 1 == options_.accumulate);
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
