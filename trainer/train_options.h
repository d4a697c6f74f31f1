// What `mone train`, `mone eval` and `mone route` are asked to do (docs/trainer.md,
// "Options"). Plain values: trainer/cli.cpp binds them to command-line
// options; the defaults here are the documented defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"
#include "trainer/image_transform_options.h"

namespace mone {

struct TrainOptions {
  std::string data;     // dataset directory (mone-data's output)
  std::string run_dir;  // checkpoints, metrics, config.ini, evaluation reports
  // Model: a preset, with any field overridden (0: the preset's value). The
  // image shape and class count come from the dataset.
  std::string preset = "tiny";
  int64_t dim = 0, depth = 0, heads = 0, experts = 0, patch = 0, mlp_ratio = 0;
  // The architecture (model/config.h): mone | vmoe; V-MoE's fields (0: the
  // defaults of ModelConfig), its super-class file and router loss weight.
  std::string arch = "mone";
  std::string router = "learned";  // learned | random (MoNE: model/config.h, Router)
  std::string gelu = "tanh";       // tanh | erf (model/config.h, Gelu)
  int64_t moe_blocks = 0, top_k = 0;
  std::string superclasses;          // empty: no super-class loss
  double router_loss_weight = 0.3;
  std::vector<int32_t> superclass_of_class;  // read from `superclasses` by resolve_model (not an option)

  int64_t steps = 1000;
  int64_t batch = 128;      // global batch of one optimizer step
  int64_t accumulate = 1;   // micro-steps per optimizer step (batch must divide)
  int64_t chunk_images = 0;  // cpu: images per forward/backward pass within a rank's micro-step (0: all)
  double lr = 1e-3;
  double min_lr = 1e-5;
  int64_t warmup = 100;     // steps
  double weight_decay = 0.05;
  double clip = 1.0;        // global gradient norm; 0: no clipping
  double label_smoothing = 0.0;
  uint64_t seed = 0;
  int threads = 0;          // set to default_thread_count() before parsing
  std::string capacity = "random";
  int64_t full_capacity_steps = 0;  // steps at e_c = 1 before --capacity applies
  // In-place distillation (method page): every step starts with a pass at
  // e_c = 1 that learns from the labels; the step's other passes learn from
  // its logits: distill_weight * tau^2 KL + distill_label_weight * CE.
  bool distill = false;
  double distill_temperature = 1.0;
  double distill_weight = 1.0;
  double distill_label_weight = 0.0;
  // Initialisation (model/parameters.h, InitScheme): small | fan-in.
  std::string init = "fan-in";
  // Initialisation of the routing parameters (method page: router weight
  // normal with std 0.02, alpha 0); the trainer's ablations change them.
  double router_init_std = kInitStd;
  double alpha_init = 0.0;
  std::string eval_capacities;  // empty: the default capacity set
  std::string eval_split = "auto";  // auto: val when the dataset has one, else test
  int64_t eval_batch = 100;
  int64_t eval_every = 0;        // steps; 0: only at the end
  int64_t log_every = 10;
  std::string progress = "auto";  // auto (bar on a terminal) | bar | lines
  int64_t checkpoint_every = 0;  // steps; 0: only at the end (and when stopped)
  int64_t keep = 3;
  std::string resume = "auto";   // auto | none | PATH
  bool overwrite = false;        // with --resume none: move an earlier run in run_dir aside
  bool allow_other_data = false; // resume on a dataset other than the checkpoint's (fine-tuning)
  bool augment = true;
  bool no_flip = false;
  ImageTransformOptions images;  // encoded (image folder) datasets

  // Where it trains (trainer/training_backend.h): cpu | cuda, and on cuda the
  // compute type (bf16 | fp32; master weights, gradients and moments are fp32).
  std::string device = "cpu";
  std::string precision = "bf16";
  // On cuda, one rank, no accumulation: replay each step's forward and
  // backward as a CUDA graph per (tokens per expert, batch) (trainer/cuda_training_backend.cpp).
  bool cuda_graphs = true;

  // Data parallelism (docs/distributed.md).
  double bucket_mb = 25;          // gradient bucket size, MiB
  double first_bucket_mb = 1;     // the first bucket (the end of the buffer), MiB: starts communication early
  std::string allreduce_dtype = "fp32";  // fp32 | bf16: what the gradient allreduce sends
  int64_t comm_timeout = 600;     // seconds any collective may take before the job is aborted
  int64_t check_params_every = 0; // steps; compare a parameter checksum across ranks (0: never)

  // Rank and world of this process, from comm/World (not options).
  int64_t rank = 0;
  int64_t world = 1;
};

struct EvalOptions {
  std::string data;
  std::string checkpoint;  // a checkpoint file, or a run directory (its newest valid checkpoint)
  std::string out;         // where the reports go; empty: the checkpoint's run directory
  std::string split = "auto";
  std::string capacities;  // empty: the default capacity set
  int64_t batch = 100;
  int threads = 0;
  std::string device = "cpu";     // cpu | cuda
  std::string precision = "bf16"; // on cuda: bf16 | fp32
};

struct RouteOptions {
  std::string data;
  std::string checkpoint;  // a checkpoint file, or a run directory (its newest valid checkpoint)
  std::string out;         // directory for image-<i>.png and grid.png (required)
  std::string split = "test";
  double capacity = 0.3;   // e_c of the per-image pictures
  int64_t images = 8;      // the split's first K images
  std::string capacities = "0.2,0.3,0.5,1.0";  // the grid's columns
  int64_t scale = 8;       // picture pixels per image pixel
  int threads = 0;
};

struct SuperclassOptions {
  std::string data;
  std::string checkpoint;  // a trained model (a dense one in the method), file or run directory
  int64_t groups = 0;      // super-classes (required)
  std::string out;         // the super-class file (required)
  std::string split = "auto";  // auto: val if present, else test
  int64_t batch = 100;
  int threads = 0;
};

// The model of a run: the arch, the preset, the overrides, and the dataset's
// image shape and classes. Writes the resolved fields back into `options` so
// the effective configuration shows them, and reads --superclasses into
// options.superclass_of_class (V-MoE's --experts 0: one expert per
// super-class). Throws UsageError naming the option.
ModelConfig resolve_model(TrainOptions& options, int64_t image_height, int64_t image_width, int64_t channels,
                          int64_t classes);

// Range checks of the values Boost cannot check by type; throws UsageError
// naming the option. They need no MPI: the checks that depend on the number
// of ranks are check_batches_split_over_ranks, once options.world is known.
void check_train_options(const TrainOptions& options);
void check_batches_split_over_ranks(const TrainOptions& options);
void check_eval_options(const EvalOptions& options);
void check_route_options(const RouteOptions& options);
void check_superclass_options(const SuperclassOptions& options);

}  // namespace mone
