// What `mone train` asks of the hardware it trains on (--device): the model,
// its optimizer, and the averaging of gradients over the ranks. One training
// loop (trainer/train_loop.cpp) drives either backend with the same
// semantics: the CPU one (cpu_training_backend.cpp) and the CUDA one
// (cuda_training_backend.cpp, compiled only in builds with the CUDA backend).
//
// The training state as the loop sees it is the CPU's: fp32 parameters and
// AdamW state on the host in the ParameterSet layout, which is what
// checkpoints store and what the ranks broadcast. pull_state() makes
// parameters() and optimizer() current; after the loop has changed them
// (initialisation, resume, broadcast), push_state() hands them to the
// backend. On the CPU both are no-ops: the host state is the live state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/gradient_buckets.h"
#include "comm/world.h"
#include "data/loader.h"
#include "model/adamw.h"
#include "model/config.h"
#include "model/parameters.h"
#include "model/routing_plan.h"
#include "trainer/forward_model.h"
#include "trainer/train_options.h"

namespace mone {

// One pass of a training step over the step's batch. A step runs its passes
// in order and sums their gradients (--capacity sandwich, --distill).
struct TrainingPass {
  RoutingPlan plan;
  // In-place distillation: this pass learns from the step's first pass's
  // logits (detached), not from the labels alone (train_options.h).
  bool distilled = false;
  // The random router's key (model.h, set_random_routing): from (seed, step, pass).
  uint64_t routing_key = 0;
};

class TrainingBackend {
 public:
  virtual ~TrainingBackend() = default;

  // One line for the startup output: the device, the precision and how the
  // gradients are averaged.
  virtual std::string description() const = 0;

  virtual ParameterSet<float>& parameters() = 0;
  virtual AdamW& optimizer() = 0;
  virtual void pull_state() = 0;
  virtual void push_state() = 0;

  // One optimizer step: begin_step, then micro_step for each micro-batch in
  // order (`last` on the final one), each running the step's passes, then
  // finish_gradients, after which the gradients are the mean over all ranks'
  // samples of the step (each micro-step's gradient scaled by 1 /
  // micro-steps); then clip_gradients and update. The CUDA backend runs one
  // pass per step (the options refuse more there).
  virtual void begin_step(const std::string& context) = 0;
  virtual void micro_step(const Batch& batch, const std::vector<TrainingPass>& passes, bool last) = 0;
  // This rank's micro-step losses (each the mean over its micro-batch, summed
  // over the passes), summed in order.
  virtual double finish_gradients() = 0;
  // The global gradient norm before clipping (max_norm <= 0: no clipping).
  virtual double clip_gradients(double max_norm) = 0;
  virtual void update(double lr) = 0;

  // The model as it is now, for evaluation.
  virtual ForwardModel& forward_model() = 0;
};

// The gradient buckets of --bucket-mb, --first-bucket-mb and --allreduce-dtype.
BucketOptions bucket_options(const TrainOptions& options);

// The backend options.device names, with the model initialised from
// options.seed. `host` carries the loop's own collectives (and the gradients
// where no device collective applies). Throws UsageError naming --device
// when this build has no CUDA backend or no device is visible.
std::unique_ptr<TrainingBackend> make_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                       const World& world, Communicator& host);

// `mone eval --device`: the model of `values` (CPU layout) on that device,
// for batches of up to `max_batch`. Throws UsageError as above.
std::unique_ptr<ForwardModel> make_forward_model(const std::string& device, const std::string& precision,
                                                 const ModelConfig& config, const std::vector<float>& values,
                                                 int64_t max_batch, const World& world);

}  // namespace mone
