#include "trainer/training_evaluation.h"

#include <cstdio>
#include <iostream>

#include "comm/host_values.h"
#include "trainer/evaluate.h"
#include "trainer/signals.h"

namespace mone {

TrainingEvaluation::TrainingEvaluation(const TrainOptions& options, const ModelConfig& model,
                                       std::vector<double> capacities, const CheckpointDirectory& checkpoints,
                                       const std::string& config_ini)
    : options_(options),
      model_(model),
      capacities_(std::move(capacities)),
      checkpoints_(checkpoints),
      config_ini_(config_ini),
      split_(evaluation_split(options.data, options.eval_split)) {}

bool TrainingEvaluation::reported(int64_t step) const {
  std::filesystem::path csv = report_stem(options_.run_dir, split_, step);
  csv += ".csv";
  return std::filesystem::exists(csv);
}

bool TrainingEvaluation::run(TrainingBackend& backend, Communicator& comm, TrainingProgress& progress,
                             MetricsLog* metrics, ProgressLine& line) {
  LoaderOptions data;
  data.dir = options_.data;
  data.split = split_;
  data.global_batch = options_.eval_batch;
  data.rank = options_.rank;
  data.world = options_.world;
  data.mode = LoaderMode::eval;
  apply_image_transform_options(options_.images, data);
  const auto stop_on_any_rank = [&comm] {
    std::vector<double> stop{stop_requested() ? 1.0 : 0.0};
    sum_over_ranks(comm, stop, "stop flag during evaluation");
    return stop[0] > 0;
  };
  const std::optional<std::vector<CapacityResult>> evaluated =
      evaluate(backend.forward_model(), data, capacities_, &comm, stop_on_any_rank);
  if (!evaluated) return false;
  const std::vector<CapacityResult>& results = *evaluated;
  if (!metrics) return true;
  line.break_line();
  std::cout << "evaluation at step " << progress.step << " on '" << data.split << "':\n";
  print_evaluation(std::cout, results);
  write_evaluation(options_.run_dir, data.split, progress.step, results, /*replace=*/true);
  JsonRecord record;
  record.add("type", std::string("eval"))
      .add("step", progress.step)
      .add("split", data.split)
      .add_json("results", evaluation_json(results));
  metrics->write(record);

  double top1 = 0;
  for (const CapacityResult& result : results) top1 += result.top1;
  top1 /= static_cast<double>(results.size());
  if (progress.best_step == 0 || top1 > progress.best_top1) {
    progress.best_top1 = top1;
    progress.best_step = progress.step;
    backend.pull_state();
    const std::filesystem::path path =
        checkpoints_.save_best(model_, backend.parameters(), backend.optimizer(), progress, config_ini_);
    char mean[32];
    std::snprintf(mean, sizeof(mean), "%.2f", 100 * top1);
    std::cout << "best so far (mean top-1 " << mean << "%): " << path.string() << "\n";
  }
  return true;
}

}  // namespace mone
