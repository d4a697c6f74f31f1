#include "trainer/cli.h"

#include <iostream>
#include <string>
#include <vector>

#include "data/data_command.h"
#include "data/dataset.h"
#include "data/error.h"
#include "model/model.h"
#include "trainer/checkpoint.h"
#include "trainer/eval_command.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/option_table.h"
#include "trainer/route_command.h"
#include "trainer/signals.h"
#include "trainer/superclasses_command.h"
#include "trainer/train_loop.h"
#include "trainer/train_options.h"
#include "trainer/verify_command.h"

namespace mone {

namespace {

constexpr const char* kUsage =
    "Usage: mone <command> [options]\n"
    "Commands:\n"
    "  train         train a MoNE ViT or a Mobile V-MoE (mone train --help)\n"
    "  eval          evaluate a checkpoint at several capacities (mone eval --help)\n"
    "  route         draw which expert each patch is routed to (mone route --help)\n"
    "  superclasses  cluster a trained model's confusion into super-classes for V-MoE (mone superclasses --help)\n"
    "  verify        load and verify checkpoints as a resume would (mone verify --help)\n"
    "  data          convert a dataset into mone's HDF5 shards (mone data --help; also the tool mone-data)\n";

// The options several commands share, each declared once.
void add_data_option(OptionTable& table, std::string* data) {
  table.add("data", data, "dataset directory written by mone data (required)");
}
void add_checkpoint_option(OptionTable& table, std::string* checkpoint) {
  table.add("checkpoint", checkpoint, "checkpoint file, or a run directory (its newest valid checkpoint; required)");
}
// The default (shown by --help) is the machine's: default_thread_count().
void add_threads_option(OptionTable& table, int* threads) {
  *threads = default_thread_count();
  table.add("threads", threads, "CPU threads", "cores / local ranks");
}
void add_device_options(OptionTable& table, std::string* device, std::string* precision) {
  table.add("device", device, "cpu | cuda: this rank's GPU (local rank modulo the visible GPUs)");
  table.add("precision", precision,
            "with --device cuda: bf16 | fp32 compute (master weights, gradients, AdamW moments are fp32)");
}

void define_train_options(OptionTable& table, TrainOptions& o) {
  add_data_option(table, &o.data);
  table.add("run-dir", &o.run_dir, "run directory: config.ini, metrics.jsonl, checkpoints/, eval/ (required)");
  table.add("arch", &o.arch,
            "mone (nested experts, token routing) | vmoe (Mobile V-MoE: MLP experts in the last blocks, per-image "
            "routing; needs --capacity fixed:1)");
  table.add("preset", &o.preset, "model preset: tiny, s16, b16 (the image shape and classes come from the dataset)");
  table.add("dim", &o.dim, "width D (0: the preset's)");
  table.add("depth", &o.depth, "encoder blocks (0: the preset's)");
  table.add("heads", &o.heads, "attention heads (0: the preset's)");
  table.add("experts", &o.experts,
            "experts E: nested (mone) or MLP experts (vmoe) (0: the preset's; vmoe with --superclasses: one per "
            "super-class)");
  table.add("patch", &o.patch, "patch size P (0: the preset's)");
  table.add("mlp-ratio", &o.mlp_ratio, "MLP hidden width / D (0: the preset's)");
  table.add("moe-blocks", &o.moe_blocks, "vmoe: the last K blocks have E MLP experts (0: 2)");
  table.add("top-k", &o.top_k, "vmoe: experts per image, combined with their renormalised router weights (0: 1)");
  table.add("superclasses", &o.superclasses,
            "vmoe: super-class file of mone superclasses; the router gets a super-class cross-entropy (empty: none)");
  table.add("router-loss-weight", &o.router_loss_weight, "vmoe: weight of the router's super-class loss");
  table.add("steps", &o.steps, "optimizer steps of the whole run");
  table.add("batch", &o.batch, "global batch per optimizer step");
  table.add("accumulate", &o.accumulate, "micro-steps per optimizer step (must divide --batch)");
  table.add("chunk-images", &o.chunk_images,
            "cpu: run each rank's images of a micro-step through forward and backward this many at a time, one chunk "
            "per thread, the gradients added in chunk order (0: all at once). A chunk's activations stay in the caches "
            "and no thread waits for another within it (tiny: 16; docs/performance.md). Same loss up to float "
            "rounding; the bits are those of this setting, on any thread count");
  table.add("lr", &o.lr, "peak learning rate: linear warmup to it, then cosine decay to --min-lr at the last step");
  table.add("min-lr", &o.min_lr, "learning rate at the end of the cosine decay");
  table.add("warmup", &o.warmup, "steps of linear warmup");
  table.add("weight-decay", &o.weight_decay,
            "AdamW (beta 0.9, 0.999, eps 1e-8) decoupled weight decay, on the projection weights and the router "
            "weight only");
  table.add("clip", &o.clip, "clip the global gradient norm to this (0: no clipping)");
  table.add("label-smoothing", &o.label_smoothing,
            "label smoothing of the training loss (the evaluation loss is unsmoothed)");
  table.add("seed", &o.seed, "seed of the initialisation, data order, augmentation and capacity draws");
  add_threads_option(table, &o.threads);
  table.add("capacity", &o.capacity,
            "e_c per step, a pure function of (seed, step): fixed:E | random (0.15,0.25,...,0.95,1 less the values "
            "infeasible for E) | random:E1,E2,... | range:LO-HI | sandwich[:K] (each step: e_c 1, the smallest of the "
            "random set and K draws from it, K 2 by default; cpu)");
  table.add("full-capacity-steps", &o.full_capacity_steps,
            "first steps at e_c = 1 before --capacity applies (a dense warm-up)");
  table.add("init", &o.init,
            "initialisation: fan-in (weights scaled by fan-in and fan-out, zero head) | small (every weight "
            "truncated normal, std 0.02)");
  table.add("gelu", &o.gelu, "the MLP's GELU: tanh (the approximation) | erf (exact; cpu)");
  table.add("router", &o.router,
            "token assignment: learned (EPR on the router) | random (a random permutation per image and "
            "step; the ablation, cpu)");
  table.add_flag("distill", &o.distill,
            "in-place distillation: each step also runs e_c = 1 first, and the other passes learn from its "
            "logits (cpu)");
  table.add("distill-temperature", &o.distill_temperature, "--distill: softmax temperature tau of both sides");
  table.add("distill-weight", &o.distill_weight, "--distill: weight of tau^2 KL(teacher || student)");
  table.add("distill-label-weight", &o.distill_label_weight,
            "--distill: weight of the students' own label cross-entropy");
  table.add("router-init-std", &o.router_init_std, "std of the router weight's normal initialisation");
  table.add("alpha-init", &o.alpha_init, "initial value of every block's MLP scale alpha (s = alpha r + 1)");
  table.add("eval-capacities", &o.eval_capacities, "comma-separated e_c list to evaluate (empty: the default set)");
  table.add("eval-split", &o.eval_split, "split to evaluate (auto: val if present, else test)");
  table.add("eval-batch", &o.eval_batch, "evaluation batch");
  table.add("eval-every", &o.eval_every, "evaluate every K steps and at the end (0: only at the end)");
  table.add("log-every", &o.log_every, "metrics record and log line every K steps and at the last");
  table.add("progress", &o.progress,
            "auto (a bar redrawn in place on a terminal, else a line per --log-every steps) | bar | lines");
  table.add("checkpoint-every", &o.checkpoint_every, "checkpoint every K steps (0: only at the end and on a stop)");
  table.add("keep", &o.keep, "checkpoints kept (the newest K)");
  table.add("resume", &o.resume,
            "auto (the newest valid checkpoint of --run-dir, if any; broken ones are skipped with a warning) | "
            "none (a new run; refused where --run-dir holds an earlier run's checkpoints, unless --overwrite) | "
            "PATH");
  table.add_flag("overwrite", &o.overwrite,
                 "with --resume none: move an earlier run in --run-dir aside (one rename, to "
                 "<run-dir>.replaced-<UTC time>) and start a new one");
  table.add_flag("allow-other-data", &o.allow_other_data,
                 "resume on a dataset other than the checkpoint's (fine-tuning); best.h5 then restarts from the "
                 "next evaluation");
  table.add("augment", &o.augment, "random crops (padding 4) and horizontal flips; false: none");
  table.add_flag("no-flip", &o.no_flip, "no horizontal flips (e.g. for digits)");
  add_device_options(table, &o.device, &o.precision);
  define_image_transform_options(table, o.images);
  table.add("cuda-graphs", &o.cuda_graphs,
            "with --device cuda on one rank without --accumulate: replay forward and backward as a CUDA graph "
            "per routing (the plan's tokens per expert), captured at its second step (false: launch op by op)");
  table.add("bucket-mb", &o.bucket_mb, "gradient allreduce bucket size in MiB");
  table.add("first-bucket-mb", &o.first_bucket_mb, "size of the first (earliest started) gradient bucket in MiB");
  table.add("allreduce-dtype", &o.allreduce_dtype,
            "what the gradient allreduce sends: fp32 | bf16 (half the bytes; each bucket rounded once, averaged in "
            "fp32)");
  table.add("comm-timeout", &o.comm_timeout,
            "seconds a collective may take before the job is aborted, naming the collective and the step");
  table.add("check-params-every", &o.check_params_every,
            "debug: compare a CRC-32 of the parameters across ranks every K steps; a difference ends the run "
            "(0: never)");
}

// The split a command passes over once, its batch and the threads.
void add_pass_options(OptionTable& table, std::string* split, int64_t* batch, int* threads,
                      const std::string& split_help) {
  table.add("split", split, split_help);
  table.add("batch", batch, "evaluation batch");
  add_threads_option(table, threads);
}

void define_eval_options(OptionTable& table, EvalOptions& o) {
  add_data_option(table, &o.data);
  add_checkpoint_option(table, &o.checkpoint);
  table.add("out", &o.out, "directory for eval/<split>-step-N.{csv,json} (empty: the checkpoint's run directory)");
  table.add("capacities", &o.capacities, "comma-separated e_c list (empty: 0.15,0.25,...,0.95,1; vmoe: 1)");
  add_pass_options(table, &o.split, &o.batch, &o.threads, "split to evaluate (auto: val if present, else test)");
  add_device_options(table, &o.device, &o.precision);
}

void define_route_options(OptionTable& table, RouteOptions& o) {
  add_data_option(table, &o.data);
  add_checkpoint_option(table, &o.checkpoint);
  table.add("out", &o.out, "directory for image-<i>.png and grid.png (required)");
  table.add("split", &o.split, "split whose first images are drawn");
  table.add("capacity", &o.capacity, "e_c of the per-image pictures image-<i>.png");
  table.add("images", &o.images, "how many of the split's first images to draw");
  table.add("capacities", &o.capacities, "comma-separated e_c list: the columns of grid.png");
  table.add("scale", &o.scale, "picture pixels per image pixel (nearest-neighbour upscaling)");
  add_threads_option(table, &o.threads);
}

void define_superclass_options(OptionTable& table, SuperclassOptions& o) {
  add_data_option(table, &o.data);
  add_checkpoint_option(table, &o.checkpoint);
  table.add("groups", &o.groups, "super-classes to find (required; V-MoE's --experts)");
  table.add("out", &o.out, "the super-class file to write (required; mone train --superclasses reads it)");
  add_pass_options(table, &o.split, &o.batch, &o.threads,
                   "split of the confusion matrix (auto: val if present, else test)");
}

// Every run ends with an evaluation: a split that is missing or does not
// fit the model must stop the start, not the end, of a run.
void check_evaluation_split(const TrainOptions& options, const ModelConfig& model) {
  const std::string split = evaluation_split(options.data, options.eval_split);
  Dataset data;
  try {
    data = Dataset::open(options.data, split);
  } catch (const DataError& error) {
    throw UsageError("--eval-split: " + std::string(error.what()));
  }
  if (data.storage == Storage::encoded) data.shape.height = data.shape.width = model.image_height;
  check_dataset_fits_model(data, model);
}

// Each command parses and checks its options before it starts MPI, so that
// --help and an option error end at once.
int train_command(const std::vector<std::string>& args, LazyWorld& world) {
  // First: a stop signal during the start (MPI, the dataset, the model) is
  // then honoured after the first step instead of killing the process.
  install_stop_handlers();
  TrainOptions options;
  OptionTable table("Usage: mone train --data DIR --run-dir DIR [options]\nTrains a MoNE ViT; see docs/trainer.md.");
  define_train_options(table, options);
  if (!table.parse(args, std::cout)) return kExitSuccess;
  check_train_options(options);
  const Dataset train = Dataset::open(options.data, "train");
  const ImageShape image = model_image_shape(options.images, train);
  const ModelConfig model = resolve_model(options, image.height, image.width, image.channels, train.classes);
  check_evaluation_split(options, model);
  const World& job = world.get();
  options.rank = job.rank();
  options.world = job.size();
  check_batches_split_over_ranks(options);
  return run_training(options, model, table, job);
}

// eval and route read one checkpoint and write one report: one process's job.
void require_one_process(const World& world) {
  if (world.size() > 1)
    throw UsageError("runs in one process; this is " + world.describe() + ": start it without mpirun/srun");
}

int eval_command(const std::vector<std::string>& args, LazyWorld& world) {
  EvalOptions options;
  OptionTable table("Usage: mone eval --data DIR --checkpoint FILE|RUN_DIR [options]\n"
                    "Evaluates a checkpoint at several effective capacities; see docs/trainer.md.");
  define_eval_options(table, options);
  if (!table.parse(args, std::cout)) return kExitSuccess;
  check_eval_options(options);
  require_one_process(world.get());  // --device cuda picks the device from the World
  return run_evaluation(options, world.get());
}

// route and data need no World: MPI starts only to refuse a launch of
// several processes.
void require_no_launcher_or_one_process(LazyWorld& world) {
  if (started_by_a_launcher()) require_one_process(world.get());
}

// route and superclasses: options parsed and checked, then one process runs it.
template <class Options>
int one_process_command(const std::vector<std::string>& args, LazyWorld& world, const std::string& usage,
                        void (*define)(OptionTable&, Options&), void (*check)(const Options&),
                        int (*run)(const Options&)) {
  Options options;
  OptionTable table(usage);
  define(table, options);
  if (!table.parse(args, std::cout)) return kExitSuccess;
  check(options);
  require_no_launcher_or_one_process(world);
  return run(options);
}

int route_command(const std::vector<std::string>& args, LazyWorld& world) {
  return one_process_command<RouteOptions>(
      args, world,
      "Usage: mone route --data DIR --checkpoint FILE|RUN_DIR --out DIR [options]\n"
      "Draws the expert EPR routes each patch to, tinted from the smallest expert (blue) to the\n"
      "full one (red); for V-MoE, the table of each class's images per expert; see docs/trainer.md.",
      define_route_options, check_route_options, run_routing_pictures);
}

int superclasses_command(const std::vector<std::string>& args, LazyWorld& world) {
  return one_process_command<SuperclassOptions>(
      args, world,
      "Usage: mone superclasses --data DIR --checkpoint FILE|RUN_DIR --groups E --out FILE [options]\n"
      "Clusters a trained model's confusion matrix into E super-classes for --arch vmoe's router;\n"
      "see docs/method.md, section 5.",
      define_superclass_options, check_superclass_options, run_superclasses);
}

int verify_command(const std::vector<std::string>& args, LazyWorld& world) {
  std::string checkpoint;
  OptionTable table("Usage: mone verify --checkpoint FILE|RUN_DIR\n"
                    "Loads and verifies a checkpoint, or every checkpoint of a run directory, as a resume would;\n"
                    "exit code 0 when it (or at least one) is valid. See docs/trainer.md.");
  table.add("checkpoint", &checkpoint, "checkpoint file, or a run directory (all its checkpoints; required)");
  if (!table.parse(args, std::cout)) return kExitSuccess;
  if (checkpoint.empty()) throw UsageError("--checkpoint: is required");
  require_no_launcher_or_one_process(world);
  return run_verify(checkpoint);
}

}  // namespace

int run_command_line(int argc, char** argv, LazyWorld& world) {
  const std::string command = argc > 1 ? argv[1] : "";
  const std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  try {
    if (command == "train") return train_command(args, world);
    if (command == "eval") return eval_command(args, world);
    if (command == "route") return route_command(args, world);
    if (command == "verify") return verify_command(args, world);
    if (command == "superclasses") return superclasses_command(args, world);
    if (command == "data") {
      require_no_launcher_or_one_process(world);
      return run_data_command("mone data", args);
    }
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return kExitSuccess;
    }
    std::cerr << "mone: error: " << (command.empty() ? "no command given" : "unknown command '" + command + "'")
              << "\n"
              << kUsage;
    return kExitUsage;
  } catch (const UsageError& error) {
    std::cerr << "mone " << command << ": error: " << error.what() << "\n";
    return kExitUsage;
  } catch (const SaveError& error) {
    std::cerr << "mone " << command << ": error: " << error.what() << "\n";
    return kExitSaveFailed;
  } catch (const DivergedError& error) {
    std::cerr << "\nmone " << command << ": error: " << error.what() << "\n";
    return kExitDiverged;
  } catch (const std::exception& error) {
    std::cerr << "mone " << command << ": error: " << error.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace mone
