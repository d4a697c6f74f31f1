#include "trainer/train_loop.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <vector>

#include "data/loader.h"
#include "model/adamw.h"
#include "model/model.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/signals.h"

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

struct StepResult {
  double loss = 0;
  double capacity = 0;           // requested e_c
  double realised_capacity = 0;  // after flooring
  double lr = 0;
  double grad_norm = 0;          // before clipping
  double data_wait_ms = 0;
};

class Trainer {
 public:
  Trainer(const TrainOptions& options, const ModelConfig& model_config, const std::string& config_ini)
      : options_(options),
        config_ini_(config_ini),
        run_dir_(options.run_dir),
        checkpoints_(run_dir_),
        model_(model_config, options.seed),
        optimizer_(model_.params().infos(), model_.params().numel(),
                   AdamWSettings{0.9, 0.999, 1e-8, options.weight_decay}),
        lr_{options.lr, options.min_lr, options.warmup, options.steps},
        capacity_(parse_option("capacity",
                               [&] { return CapacitySchedule::parse(options.capacity, model_config.experts,
                                                                      options.full_capacity_steps);
                               })),
        eval_capacities_(parse_option("eval-capacities", [&] {
          return options.eval_capacities.empty() ? default_capacities(model_config.experts)
                                                 : parse_capacity_list(options.eval_capacities, model_config.experts);
        })) {
    model_.set_label_smoothing(options.label_smoothing);
    initialise_routing(options.router_init_std, options.alpha_init);
    progress_.world_size = options.world;
    progress_.seed = options.seed;
  }

  int run();

 private:
  void initialise_routing(double router_std, double alpha);
  void resume(const Checkpoint& checkpoint);
  StepResult train_step(Loader& loader, int64_t step);
  void log_step(MetricsLog& metrics, ProgressLine& line, const StepResult& result, double step_ms);
  void evaluate_now(MetricsLog& metrics, ProgressLine& line);
  void save(ProgressLine& line);

  const TrainOptions& options_;
  const std::string& config_ini_;
  fs::path run_dir_;
  CheckpointDirectory checkpoints_;
  Model<float> model_;
  AdamW optimizer_;
  LrSchedule lr_;
  CapacitySchedule capacity_;
  std::vector<double> eval_capacities_;
  TrainingProgress progress_;
  int64_t train_samples_ = 1;
  Batch batch_;
};

// The model draws the router weight with std kInitStd: rescaling the same draw
// changes the std and nothing else. A resumed run overwrites all of it.
void Trainer::initialise_routing(double router_std, double alpha) {
  ParameterSet<float>& params = model_.params();
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

void Trainer::resume(const Checkpoint& checkpoint) {
  require_same_model(checkpoint, model_.config());
  ParameterSet<float>& params = model_.params();
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), params.values());
  optimizer_.restore(checkpoint.optimizer_step, checkpoint.first_moment, checkpoint.second_moment);
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
  ParameterSet<float>& params = model_.params();
  params.zero_grads();
  for (int64_t micro = 0; micro < options_.accumulate; ++micro) {
    const Clock::time_point wait = Clock::now();
    loader.next(batch_);
    result.data_wait_ms += milliseconds_since(wait);
    result.loss += model_.forward_backward(batch_.images.data(), batch_.labels.data(), batch_.count, result.capacity);
  }
  result.realised_capacity = model_.routing().realised_capacity;
  result.loss /= static_cast<double>(options_.accumulate);
  if (options_.accumulate > 1) {
    // Each micro-step added the gradient of its own mean loss.
    const float scale = 1.0f / static_cast<float>(options_.accumulate);
    float* grads = params.grads();
    for (int64_t i = 0; i < params.numel(); ++i) grads[i] *= scale;
  }
  // Data parallelism: the gradient allreduce (mean over `world` ranks) goes here.
  if (!std::isfinite(result.loss)) diverged(step + 1, "loss", result.loss, result.capacity, result.lr, checkpoints_);
  result.grad_norm = clip_grad_norm(params.grads(), params.numel(), options_.clip);
  if (!std::isfinite(result.grad_norm)) {
    diverged(step + 1, "gradient norm", result.grad_norm, result.capacity, result.lr, checkpoints_);
  }
  optimizer_.step(params.values(), params.grads(), result.lr);
  return result;
}

void Trainer::log_step(MetricsLog& metrics, ProgressLine& line, const StepResult& r, double step_ms) {
  const bool logged = progress_.step % options_.log_every == 0 || progress_.step == options_.steps;
  const double images_per_second = static_cast<double>(options_.batch) / (step_ms / 1000.0);
  if (logged) {
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
        .add("data_wait_ms", r.data_wait_ms);
    metrics.write(record);
  }
  char text[160];
  std::snprintf(text, sizeof(text), "loss %.4f  lr %.3g  e_c %.2f  |g| %.3f  %.0f img/s  %.1f ms/step", r.loss,
                r.lr, r.capacity, r.grad_norm, images_per_second, step_ms);
  line.update(progress_.step, logged, text);
}

void Trainer::evaluate_now(MetricsLog& metrics, ProgressLine& line) {
  LoaderOptions data;
  data.dir = options_.data;
  data.split = evaluation_split(options_.data, options_.eval_split);
  data.global_batch = options_.eval_batch;
  data.rank = options_.rank;
  data.world = options_.world;
  data.mode = LoaderMode::eval;
  const std::vector<CapacityResult> results = evaluate(model_, data, eval_capacities_);
  line.break_line();
  std::cout << "evaluation at step " << progress_.step << " on '" << data.split << "':\n";
  print_evaluation(std::cout, results);
  write_evaluation(run_dir_, data.split, progress_.step, results);
  JsonRecord record;
  record.add("type", std::string("eval"))
      .add("step", progress_.step)
      .add("split", data.split)
      .add_json("results", evaluation_json(results));
  metrics.write(record);

  // One score for a model that serves many budgets: the mean over them.
  double top1 = 0;
  for (const CapacityResult& result : results) top1 += result.top1;
  top1 /= static_cast<double>(results.size());
  if (progress_.best_step == 0 || top1 > progress_.best_top1) {
    progress_.best_top1 = top1;
    progress_.best_step = progress_.step;
    const fs::path path =
        checkpoints_.save_best(model_.config(), model_.params(), optimizer_, progress_, config_ini_);
    std::cout << "best so far (mean top-1 " << format_double(100 * top1) << "%): " << path.string() << "\n";
  }
}

void Trainer::save(ProgressLine& line) {
  const fs::path path = checkpoints_.save(model_.config(), model_.params(), optimizer_, progress_, config_ini_,
                                          options_.keep);
  line.break_line();
  std::cout << "saved checkpoint " << path.string() << "\n";
}

int Trainer::run() {
  fs::create_directories(run_dir_);
  if (const std::optional<Checkpoint> checkpoint = checkpoint_to_resume(options_, checkpoints_)) resume(*checkpoint);
  {
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
  Loader loader(data, progress_.consumed_samples);
  train_samples_ = loader.dataset().samples;

  MetricsLog metrics(run_dir_ / "metrics.jsonl", progress_.step);
  ProgressLine line(progress_.step, options_.steps);
  install_stop_handlers();
  while (progress_.step < options_.steps) {
    const Clock::time_point start = Clock::now();
    const StepResult result = train_step(loader, progress_.step);
    const double step_ms = milliseconds_since(start);
    ++progress_.step;
    progress_.consumed_samples = loader.position();
    progress_.epoch = progress_.consumed_samples / train_samples_;
    log_step(metrics, line, result, step_ms);

    const bool stopping = stop_requested();
    const bool last = progress_.step == options_.steps;
    const bool evaluate_now_due =
        last || (options_.eval_every > 0 && progress_.step % options_.eval_every == 0);
    if (evaluate_now_due && !stopping) evaluate_now(metrics, line);
    if (last || stopping || (options_.checkpoint_every > 0 && progress_.step % options_.checkpoint_every == 0)) {
      save(line);
    }
    if (stopping) {
      line.break_line();
      std::cout << "stopped by signal " << stop_signal() << " after step " << progress_.step
                << "; resume with the same command (exit code " << kExitStopped << ")\n";
      return kExitStopped;
    }
  }
  line.break_line();
  return kExitSuccess;
}

}  // namespace

int run_training(const TrainOptions& options, const ModelConfig& model, const OptionTable& table) {
  set_thread_count(options.threads);
  const std::string config_ini = table.ini();
  Trainer trainer(options, model, config_ini);  // checks the capacity options
  std::cout << "mone train: effective configuration\n";
  table.print(std::cout);
  return trainer.run();
}

}  // namespace mone
