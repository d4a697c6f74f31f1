// `mone train`'s loop on one rank: start identical on all ranks (resume.h),
// then steps (train_step.h) with logging, periodic evaluation and the best
// checkpoint (training_evaluation.h), checkpoints and the stop protocol.
#include "trainer/train_loop.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "comm/host_values.h"
#include "comm/mpi_communicator.h"
#include "data/checksum.h"
#include "data/loader.h"
#include "trainer/atomic_file.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/metrics.h"
#include "trainer/resume.h"
#include "trainer/run_directory.h"
#include "trainer/signals.h"
#include "trainer/train_step.h"
#include "trainer/training_backend.h"
#include "trainer/training_evaluation.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

template <class Parse>
auto parse_option(const char* option, Parse parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& error) {
    throw UsageError(std::string("--") + option + ": " + error.what());
  }
}

class Trainer {
 public:
  Trainer(const TrainOptions& options, const ModelConfig& model_config, const std::string& config_ini,
          const World& world)
      : options_(options),
        root_(world.is_root()),
        comm_(world, std::chrono::seconds(options.comm_timeout)),
        config_ini_(config_ini),
        run_dir_(options.run_dir),
        checkpoints_(run_dir_),
        model_config_(model_config),
        // The capacity options are checked before the backend starts (which
        // may claim a device).
        capacity_(parse_option("capacity",
                               [&] { return CapacitySchedule::parse(options.capacity, model_config.experts,
                                                                      options.full_capacity_steps);
                               })),
        evaluation_(options, model_config, parse_option("eval-capacities", [&] {
                      return evaluation_capacities(options.eval_capacities, model_config);
                    }),
                    checkpoints_, config_ini),
        backend_(make_training_backend(options, model_config, world, comm_)),
        step_(options, model_config, capacity_, *backend_, comm_, checkpoints_) {
    initialise_parameters();
  }

  int run();
  const TrainingBackend& backend() const { return *backend_; }

 private:
  void initialise_parameters();
  void check_parameters_identical(ProgressLine& line);
  void log_step(MetricsLog* metrics, ProgressLine& line, const StepResult& result, double step_ms);
  void prepare_run_directory();
  void save(ProgressLine& line);
  std::filesystem::path write_training_state();
  std::string the_last_good_checkpoint() const;
  bool evaluation_due() const;
  bool evaluate_or_stop(MetricsLog* metrics, ProgressLine& line);

  const TrainOptions& options_;
  bool root_;  // rank 0: the only rank that writes files and prints progress
  MpiCommunicator comm_;
  const std::string& config_ini_;
  fs::path run_dir_;
  std::optional<RunDirectory> run_directory_;  // rank 0: locked for the whole run
  CheckpointDirectory checkpoints_;
  ModelConfig model_config_;
  CapacitySchedule capacity_;
  TrainingEvaluation evaluation_;
  std::unique_ptr<TrainingBackend> backend_;
  TrainingStep step_;
  TrainingProgress progress_;
  int64_t train_samples_ = 1;
};

// The --init scheme, then the routing options: the scheme draws the router
// weight with std kInitStd, so rescaling the same draw changes the std and
// nothing else. A resumed run overwrites all of it. (The backend receives the
// parameters in start_identical_on_all_ranks.)
void Trainer::initialise_parameters() {
  ParameterSet<float>& params = backend_->parameters();
  params.initialise(options_.seed, parse_init_scheme(options_.init));
  for (const ParamInfo& info : params.infos()) {
    float* values = params.values() + info.offset;
    if (info.kind == ParamKind::router_weight) {
      const float scale = static_cast<float>(options_.router_init_std / kInitStd);
      for (int64_t i = 0; i < info.numel; ++i) values[i] *= scale;
    } else if (info.kind == ParamKind::alpha) {
      std::fill(values, values + info.numel, static_cast<float>(options_.alpha_init));
    }
  }
}

// Every step ends in collectives, so rank 0's step time is the job's, and the
// global batch over it is the global throughput.
void Trainer::log_step(MetricsLog* metrics, ProgressLine& line, const StepResult& r, double step_ms) {
  const bool logged = progress_.step % options_.log_every == 0 || progress_.step == options_.steps;
  const double images_per_second = static_cast<double>(options_.batch) / (step_ms / 1000.0);
  if (logged && metrics) {
    JsonRecord record;
    record.add("type", std::string("train"))
        .add("step", progress_.step)
        .add("epoch", static_cast<double>(progress_.consumed_samples) / static_cast<double>(train_samples_))
        .add("loss", r.loss)
        .add("lr", r.lr)
        .add("e_c", r.capacity)
        .add("realised_e_c", r.realised_capacity)
        .add("grad_norm", r.grad_norm)
        // The step's training FLOPs: 3x the forward's (method page, "FLOPs"), over the global batch.
        .add("gflops", 3.0 * r.forward_flops_per_image * static_cast<double>(options_.batch) / 1e9)
        .add("img_per_s", images_per_second)
        .add("ms_per_step", step_ms)
        .add("data_wait_ms", r.data_wait_ms)
        .add("ranks", options_.world);
    metrics->write(record);
  }
  char text[160];
  std::snprintf(text, sizeof(text), "loss %.4f  lr %.3g  e_c %.2f  |g| %.3f  %.0f img/s  %.1f ms/step", r.loss,
                r.lr, r.capacity, r.grad_norm, images_per_second, step_ms);
  line.update(progress_.step, logged, text);
}

// Rank 0: the checkpoint of progress_.step, pruned to the newest --keep.
fs::path Trainer::write_training_state() {
  backend_->pull_state();
  return checkpoints_.save(model_config_, backend_->parameters(), backend_->optimizer(), progress_, config_ini_,
                           options_.keep);
}

// Rank 0 writes (every rank holds the same state); the barrier keeps the
// others from running ahead, or exiting, before the checkpoint is on disk.
// A failed write throws on rank 0 alone; mone's main then aborts the job.
void Trainer::save(ProgressLine& line) {
  if (root_) {
    line.break_line();
    try {
      std::cout << "saved checkpoint " << write_training_state().string() << "\n";
    } catch (const SaveError& error) {
      throw SaveError(error.what() + ("\n" + the_last_good_checkpoint()));
    }
  }
  comm_.barrier("checkpoint of step " + std::to_string(progress_.step));
}

// After a failed write: the state a restart would take, loaded and verified.
std::string Trainer::the_last_good_checkpoint() const {
  std::ostringstream skipped;
  try {
    const std::optional<Checkpoint> last = checkpoints_.newest_valid(skipped);
    if (!last) return "no earlier checkpoint of this run exists";
    return "the last good checkpoint, " + checkpoints_.path_for(last->progress.step).string() +
           ", is intact (loaded and verified)";
  } catch (const CheckpointError& error) {
    return std::string("no earlier checkpoint is usable: ") + error.what();
  }
}

// Rank 0 owns the run directory: locked first, so nothing below can race a
// second training; then an earlier run is continued, refused or moved
// aside; then there must be room for a checkpoint before any step runs.
void Trainer::prepare_run_directory() {
  run_directory_.emplace(run_dir_);
  if (options_.overwrite && run_directory_->holds_checkpoints()) {
    const fs::path aside = run_directory_->move_earlier_run_aside();
    std::cout << "--overwrite: moved the earlier run to " << aside.string() << "\n";
  } else if (options_.resume == "none" && run_directory_->holds_checkpoints()) {
    const std::vector<fs::path> files = checkpoints_.list();
    throw UsageError("--resume none: '" + run_dir_.string() + "' holds an earlier run's checkpoints (" +
                     (files.empty() ? std::string("best.h5") : files.back().filename().string()) +
                     "); continue it with --resume auto, or start over with --overwrite (moves it aside)");
  }
  const uint64_t needed = checkpoint_bytes(backend_->parameters(), config_ini_);
  const uint64_t free = free_bytes(run_dir_);
  if (free < needed) {
    throw UsageError("--run-dir: '" + run_dir_.string() + "' has " + byte_text(free) +
                     " free; one checkpoint of this model needs " + byte_text(needed));
  }
}

// --check-params-every: a CRC-32 of the parameter bytes from every rank.
// Every rank sees all of them, so all fail together, naming the ranks.
void Trainer::check_parameters_identical(ProgressLine& line) {
  backend_->pull_state();
  const ParameterSet<float>& params = backend_->parameters();
  Crc32 crc;
  crc.update(params.values(), static_cast<size_t>(params.numel()) * sizeof(float));
  const uint32_t mine = crc.value();
  std::vector<uint32_t> all(static_cast<size_t>(options_.world));
  allgather_bytes(comm_, &mine, all.data(), sizeof(mine), "parameter checksum after step " +
                                                            std::to_string(progress_.step));
  char text[32];
  std::string table, differing;
  for (size_t r = 0; r < all.size(); ++r) {
    std::snprintf(text, sizeof(text), "0x%08x", all[r]);
    table += "\n  rank " + std::to_string(r) + ": crc32 " + text;
    if (all[r] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!differing.empty())
    throw std::runtime_error("--check-params-every: after step " + std::to_string(progress_.step) +
                             " the parameters of rank(s) " + differing + " differ from rank 0's:" + table);
  line.break_line();
  std::snprintf(text, sizeof(text), "0x%08x", all[0]);
  std::cout << "step " << progress_.step << ": parameters identical on all " << options_.world
            << " ranks (crc32 " << text << ")\n";
}

bool Trainer::evaluation_due() const {
  return progress_.step == options_.steps || (options_.eval_every > 0 && progress_.step % options_.eval_every == 0);
}

// Evaluates now; false when a stop signal (on any rank) cut it short. If it
// fails, rank 0 first saves the training state, so no step is lost to it.
bool Trainer::evaluate_or_stop(MetricsLog* metrics, ProgressLine& line) {
  try {
    return evaluation_.run(*backend_, comm_, progress_, metrics, line);
  } catch (const std::exception& error) {
    if (root_) {
      line.break_line();
      std::cerr << "mone train: the evaluation after step " << progress_.step << " failed; saving the training state\n";
      std::cerr << "saved checkpoint " << write_training_state().string() << "\n";
    }
    throw;
  }
}

int Trainer::run() {
  if (root_) prepare_run_directory();
  progress_ = start_identical_on_all_ranks(options_, model_config_, root_ ? &*run_directory_ : nullptr, *backend_,
                                           comm_);
  if (root_) {
    run_directory_->write_run_id(progress_.run_id);
    write_file_atomically(run_dir_ / "config.ini",
                          "# The effective configuration of this run; mone train --config reads it.\n" + config_ini_);
  }
  std::optional<MetricsLog> metrics;
  if (root_) metrics.emplace(run_dir_ / "metrics.jsonl", progress_.step);
  MetricsLog* metrics_log = metrics ? &*metrics : nullptr;
  // mpirun hands rank 0 a pseudo-terminal even when its own output goes to a
  // file, so "auto" alone cannot keep '\r' lines out of such logs: --progress lines.
  const bool redraw = options_.progress == "bar" || (options_.progress == "auto" && isatty(STDOUT_FILENO) != 0);
  ProgressLine line(progress_.step, options_.steps, redraw);
  // A stop during the evaluation of the step resumed left it to do now
  // (rank 0 sees the reports; all ranks must take part).
  int64_t evaluation_pending =
      root_ && progress_.step > 0 && evaluation_due() && !evaluation_.reported(progress_.step) ? 1 : 0;
  broadcast_bytes(comm_, &evaluation_pending, sizeof(evaluation_pending), 0, "pending evaluation");
  if (evaluation_pending) {
    std::cout << "the evaluation of step " << progress_.step << " was interrupted; evaluating now\n";
    if (!evaluate_or_stop(metrics_log, line)) return kExitStopped;
  }
  if (progress_.step >= options_.steps) {
    std::cout << "already at step " << progress_.step << " of " << options_.steps << "; nothing to do\n";
    return kExitSuccess;
  }

  LoaderOptions data;
  data.dir = options_.data;
  data.split = "train";
  data.global_batch = options_.batch / options_.accumulate;
  data.rank = options_.rank;
  data.world = options_.world;
  data.seed = progress_.seed;
  data.mode = LoaderMode::train;
  data.crop_padding = options_.augment ? data.crop_padding : 0;
  data.flip = options_.augment && !options_.no_flip;
  data.allocator = &backend_->forward_model().batch_allocator();
  apply_image_transform_options(options_.images, data);
  Loader loader(data, progress_.consumed_samples);
  train_samples_ = loader.dataset().samples;

  while (progress_.step < options_.steps) {
    const Clock::time_point start = Clock::now();
    const StepResult result = step_.run(loader, progress_.step, progress_.seed);
    const double step_ms = milliseconds_since(start);
    ++progress_.step;
    progress_.consumed_samples = loader.position();
    progress_.epoch = progress_.consumed_samples / train_samples_;
    log_step(metrics_log, line, result, step_ms);
    if (options_.check_params_every > 0 && progress_.step % options_.check_params_every == 0)
      check_parameters_identical(line);

    bool stopping = result.stop;
    const bool last = progress_.step == options_.steps;
    // A stop during the evaluation skips the rest of it: the checkpoint below
    // is the step's, and the resumed run evaluates it first.
    if (evaluation_due() && !stopping) stopping = !evaluate_or_stop(metrics_log, line);
    if (last || stopping || (options_.checkpoint_every > 0 && progress_.step % options_.checkpoint_every == 0)) {
      save(line);
    }
    if (stopping) {
      line.break_line();
      if (stop_requested())
        std::cout << "stopped by signal " << stop_signal() << " after step " << progress_.step;
      else
        std::cout << "stopped after step " << progress_.step << " because another rank received a stop signal";
      std::cout << "; resume with the same command (exit code " << kExitStopped << ")\n";
      return kExitStopped;
    }
  }
  line.break_line();
  return kExitSuccess;
}

}  // namespace

int run_training(const TrainOptions& options, const ModelConfig& model, const OptionTable& table,
                 const World& world) {
  // Only rank 0 prints progress; the others' standard output is muted (their
  // warnings and errors still reach stderr).
  if (!world.is_root()) std::cout.setstate(std::ios::badbit);
  set_thread_count(options.threads);
  const std::string config_ini = table.ini();
  Trainer trainer(options, model, config_ini, world);  // checks the capacity options
  std::cout << "mone train: effective configuration (" << world.size() << (world.size() == 1 ? " rank" : " ranks")
            << ", " << options.threads << (options.threads == 1 ? " thread" : " threads") << " each)\n";
  table.print(std::cout);
  std::cout << "device: " << trainer.backend().description() << "\n";
  return trainer.run();
}

}  // namespace mone
