#include "trainer/train_loop.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "comm/host_values.h"
#include "comm/mpi_communicator.h"
#include "data/checksum.h"
#include "data/loader.h"
#include "model/capacity.h"
#include "model/model.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/signals.h"
#include "trainer/training_backend.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The checkpoint --resume asks for: auto (the newest valid one, if any),
// none, or a path.
std::optional<Checkpoint> checkpoint_to_resume(const TrainOptions& options, const CheckpointDirectory& checkpoints) {
  if (options.resume == "none") return std::nullopt;
  if (options.resume == "auto") return checkpoints.newest_valid(std::cerr);
  return read_checkpoint(options.resume);
}

void require_same_model(const Checkpoint& checkpoint, const ModelConfig& model) {
  const std::vector<std::string> differences = model_differences(checkpoint.model, model);
  if (differences.empty()) return;
  std::string message = "the checkpoint to resume (step " + std::to_string(checkpoint.progress.step) +
                        ") has a different model than this run's options:";
  for (const std::string& difference : differences) message += "\n  " + difference;
  throw UsageError(message + "\nuse the checkpoint's model options, or --resume none to start over");
}

[[noreturn]] void diverged(int64_t step, const char* what, double value, double capacity, double lr,
                           const CheckpointDirectory& checkpoints) {
  const std::vector<fs::path> saved = checkpoints.list();
  const std::string value_text = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  throw DivergedError("step " + std::to_string(step) + ": the " + what + " is " + value_text +
                      " (e_c " + format_double(capacity) + ", lr " + format_double(lr) +
                      "); stopped without updating the parameters. " +
                      (saved.empty() ? std::string("No checkpoint was written yet")
                                     : "The newest checkpoint is intact: " + saved.back().string()) +
                      ". Try a lower --lr or a longer --warmup.");
}

template <class Parse>
auto parse_option(const char* option, Parse parse) {
  try {
    return parse();
  } catch (const std::invalid_argument& error) {
    throw UsageError(std::string("--") + option + ": " + error.what());
  }
}

// What rank 0 broadcasts before training: whether it resumes, and from where.
// Plain int64 fields so it travels as bytes (comm/host_values.h).
struct ResumeHeader {
  int64_t resumed = 0;
  int64_t step = 0, epoch = 0, consumed_samples = 0, saved_world_size = 1;
  int64_t optimizer_step = 0;
  uint64_t seed = 0;
};

struct StepResult {
  double loss = 0;
  double capacity = 0;           // requested e_c
  double realised_capacity = 0;  // after flooring
  double lr = 0;
  double grad_norm = 0;          // before clipping
  double data_wait_ms = 0;       // mean over the ranks
  bool stop = false;             // some rank was asked to stop: all stop after this step
};

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
        lr_{options.lr, options.min_lr, options.warmup, options.steps},
        capacity_(parse_option("capacity",
                               [&] { return CapacitySchedule::parse(options.capacity, model_config.experts,
                                                                      options.full_capacity_steps);
                               })),
        eval_capacities_(parse_option("eval-capacities", [&] {
          return options.eval_capacities.empty() ? default_capacities(model_config.experts)
                                                 : parse_capacity_list(options.eval_capacities, model_config.experts);
        })),
        backend_(make_training_backend(options, model_config, world, comm_)) {
    initialise_routing(options.router_init_std, options.alpha_init);
    progress_.world_size = options.world;
    progress_.seed = options.seed;
  }

  int run();
  const TrainingBackend& backend() const { return *backend_; }

 private:
  void initialise_routing(double router_std, double alpha);
  void start_identical_on_all_ranks();
  void resume(const Checkpoint& checkpoint);
  StepResult train_step(Loader& loader, int64_t step);
  void check_parameters_identical(ProgressLine& line);
  void log_step(MetricsLog* metrics, ProgressLine& line, const StepResult& result, double step_ms);
  void evaluate_now(MetricsLog* metrics, ProgressLine& line);
  void save(ProgressLine& line);

  const TrainOptions& options_;
  bool root_;  // rank 0: the only rank that writes files and prints progress
  MpiCommunicator comm_;
  const std::string& config_ini_;
  fs::path run_dir_;
  CheckpointDirectory checkpoints_;
  ModelConfig model_config_;
  LrSchedule lr_;
  CapacitySchedule capacity_;
  std::vector<double> eval_capacities_;
  std::unique_ptr<TrainingBackend> backend_;
  TrainingProgress progress_;
  int64_t train_samples_ = 1;
  Batch batch_;
};

// The model draws the router weight with std kInitStd: rescaling the same draw
// changes the std and nothing else. A resumed run overwrites all of it. (The
// backend receives the parameters in start_identical_on_all_ranks.)
void Trainer::initialise_routing(double router_std, double alpha) {
  ParameterSet<float>& params = backend_->parameters();
  for (const ParamInfo& info : params.infos()) {
    float* values = params.values() + info.offset;
    if (info.kind == ParamKind::router_weight) {
      const float scale = static_cast<float>(router_std / kInitStd);
      for (int64_t i = 0; i < info.numel; ++i) values[i] *= scale;
    } else if (info.kind == ParamKind::alpha) {
      std::fill(values, values + info.numel, static_cast<float>(alpha));
    }
  }
}

// Rank 0 alone looks for and reads the checkpoint (the others may not even
// see the same file system); then it broadcasts whether it resumes, the
// progress, the parameters and, when resuming, the AdamW state. Fresh runs
// broadcast the parameters too: every rank initialises from the same seed, so
// this only guards against a rank that did not. Everything happens on the
// host state; the backend receives it at the end.
void Trainer::start_identical_on_all_ranks() {
  std::optional<Checkpoint> checkpoint;
  ResumeHeader header;
  if (root_) {
    checkpoint = checkpoint_to_resume(options_, checkpoints_);
    if (checkpoint) {
      resume(*checkpoint);
      header = {1, progress_.step, progress_.epoch, progress_.consumed_samples, checkpoint->progress.world_size,
                checkpoint->optimizer_step, progress_.seed};
    }
  }
  broadcast_bytes(comm_, &header, sizeof(header), 0, "resume header");
  ParameterSet<float>& params = backend_->parameters();
  const size_t numel = static_cast<size_t>(params.numel());
  comm_.broadcast(params.values(), numel, ElementType::float32, 0, "parameter broadcast");
  if (!header.resumed) {
    backend_->push_state();
    return;
  }
  progress_.step = header.step;
  progress_.epoch = header.epoch;
  progress_.consumed_samples = header.consumed_samples;
  progress_.seed = header.seed;
  std::vector<float> first_moment(numel), second_moment(numel);
  if (root_) {
    first_moment = checkpoint->first_moment;
    second_moment = checkpoint->second_moment;
  }
  comm_.broadcast(first_moment.data(), numel, ElementType::float32, 0, "AdamW first moment broadcast");
  comm_.broadcast(second_moment.data(), numel, ElementType::float32, 0, "AdamW second moment broadcast");
  backend_->optimizer().restore(header.optimizer_step, std::move(first_moment), std::move(second_moment));
  backend_->push_state();
  if (header.saved_world_size != options_.world) {
    std::cout << "the checkpoint was saved by " << header.saved_world_size << " ranks, this run has "
              << options_.world << ": the global sample sequence continues at sample " << header.consumed_samples
              << "\n";
  }
}

// Rank 0: the checkpoint's parameters and progress (the AdamW state follows
// in start_identical_on_all_ranks, on every rank).
void Trainer::resume(const Checkpoint& checkpoint) {
  require_same_model(checkpoint, model_config_);
  ParameterSet<float>& params = backend_->parameters();
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), params.values());
  if (checkpoint.progress.seed != options_.seed) {
    std::cerr << "warning: --seed " << options_.seed << " differs from the checkpoint's " << checkpoint.progress.seed
              << "; continuing with the checkpoint's so the data order and capacities stay the run's\n";
  }
  progress_ = checkpoint.progress;
  progress_.world_size = options_.world;
  std::cout << "resuming at step " << progress_.step << " (" << progress_.consumed_samples
            << " samples consumed)\n";
}

StepResult Trainer::train_step(Loader& loader, int64_t step) {
  StepResult result;
  result.capacity = capacity_.at(progress_.seed, step);
  result.lr = lr_.at(step);
  const std::string context = "step " + std::to_string(step + 1);
  backend_->begin_step(context);
  for (int64_t micro = 0; micro < options_.accumulate; ++micro) {
    const Clock::time_point wait = Clock::now();
    loader.next(batch_);
    result.data_wait_ms += milliseconds_since(wait);
    backend_->micro_step(batch_, result.capacity, micro + 1 == options_.accumulate);
  }
  result.loss = backend_->finish_gradients();  // the gradients are now the mean over all ranks' samples
  result.realised_capacity =
      realised_capacity(tokens_per_expert(capacity_for(result.capacity, model_config_.experts), model_config_.tokens()));
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
  result.grad_norm = backend_->clip_gradients(options_.clip);
  if (!std::isfinite(result.grad_norm)) {
    diverged(step + 1, "gradient norm", result.grad_norm, result.capacity, result.lr, checkpoints_);
  }
  backend_->update(result.lr);
  return result;
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

// Every rank evaluates its shard; the totals are summed across ranks, and
// rank 0 reports them.
void Trainer::evaluate_now(MetricsLog* metrics, ProgressLine& line) {
  LoaderOptions data;
  data.dir = options_.data;
  data.split = evaluation_split(options_.data, options_.eval_split);
  data.global_batch = options_.eval_batch;
  data.rank = options_.rank;
  data.world = options_.world;
  data.mode = LoaderMode::eval;
  apply_image_transform_options(options_.images, data);
  const std::vector<CapacityResult> results = evaluate(backend_->forward_model(), data, eval_capacities_, &comm_);
  if (!metrics) return;
  line.break_line();
  std::cout << "evaluation at step " << progress_.step << " on '" << data.split << "':\n";
  print_evaluation(std::cout, results);
  write_evaluation(run_dir_, data.split, progress_.step, results);
  JsonRecord record;
  record.add("type", std::string("eval"))
      .add("step", progress_.step)
      .add("split", data.split)
      .add_json("results", evaluation_json(results));
  metrics->write(record);

  // One score for a model that serves many budgets: the mean over them.
  double top1 = 0;
  for (const CapacityResult& result : results) top1 += result.top1;
  top1 /= static_cast<double>(results.size());
  if (progress_.best_step == 0 || top1 > progress_.best_top1) {
    progress_.best_top1 = top1;
    progress_.best_step = progress_.step;
    backend_->pull_state();
    const fs::path path = checkpoints_.save_best(model_config_, backend_->parameters(), backend_->optimizer(),
                                                 progress_, config_ini_);
    std::cout << "best so far (mean top-1 " << format_double(100 * top1) << "%): " << path.string() << "\n";
  }
}

// Rank 0 writes (every rank holds the same state); the barrier keeps the
// others from running ahead, or exiting, before the checkpoint is on disk.
// A failed write throws on rank 0 alone; mone's main then aborts the job.
void Trainer::save(ProgressLine& line) {
  if (root_) {
    backend_->pull_state();
    const fs::path path = checkpoints_.save(model_config_, backend_->parameters(), backend_->optimizer(), progress_,
                                            config_ini_, options_.keep);
    line.break_line();
    std::cout << "saved checkpoint " << path.string() << "\n";
  }
  comm_.barrier("checkpoint of step " + std::to_string(progress_.step));
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

int Trainer::run() {
  if (root_) fs::create_directories(run_dir_);
  start_identical_on_all_ranks();
  if (root_) {
    std::ofstream config(run_dir_ / "config.ini");
    config << "# The effective configuration of this run; mone train --config reads it.\n" << config_ini_;
    if (!config) throw std::runtime_error("cannot write '" + (run_dir_ / "config.ini").string() + "'");
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
  apply_image_transform_options(options_.images, data);
  Loader loader(data, progress_.consumed_samples);
  train_samples_ = loader.dataset().samples;

  std::optional<MetricsLog> metrics;
  if (root_) metrics.emplace(run_dir_ / "metrics.jsonl", progress_.step);
  MetricsLog* metrics_log = metrics ? &*metrics : nullptr;
  // mpirun hands rank 0 a pseudo-terminal even when its own output goes to a
  // file, so "auto" alone cannot keep '\r' lines out of such logs: --progress lines.
  const bool redraw = options_.progress == "bar" || (options_.progress == "auto" && isatty(STDOUT_FILENO) != 0);
  ProgressLine line(progress_.step, options_.steps, redraw);
  install_stop_handlers();
  while (progress_.step < options_.steps) {
    const Clock::time_point start = Clock::now();
    const StepResult result = train_step(loader, progress_.step);
    const double step_ms = milliseconds_since(start);
    ++progress_.step;
    progress_.consumed_samples = loader.position();
    progress_.epoch = progress_.consumed_samples / train_samples_;
    log_step(metrics_log, line, result, step_ms);
    if (options_.check_params_every > 0 && progress_.step % options_.check_params_every == 0)
      check_parameters_identical(line);

    const bool stopping = result.stop;
    const bool last = progress_.step == options_.steps;
    const bool evaluate_now_due =
        last || (options_.eval_every > 0 && progress_.step % options_.eval_every == 0);
    if (evaluate_now_due && !stopping) evaluate_now(metrics_log, line);
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
