#include "trainer/training_evaluation.h"

#include <iostream>

#include "trainer/evaluate.h"

namespace mone {

TrainingEvaluation::TrainingEvaluation(const TrainOptions& options, const ModelConfig& model,
                                       std::vector<double> capacities, const CheckpointDirectory& checkpoints,
                                       const std::string& config_ini)
    : options_(options),
      model_(model),
      capacities_(std::move(capacities)),
      checkpoints_(checkpoints),
      config_ini_(config_ini) {}

void TrainingEvaluation::run(TrainingBackend& backend, Communicator& comm, TrainingProgress& progress,
                             MetricsLog* metrics, ProgressLine& line) {
  LoaderOptions data;
  data.dir = options_.data;
  data.split = evaluation_split(options_.data, options_.eval_split);
  data.global_batch = options_.eval_batch;
  data.rank = options_.rank;
  data.world = options_.world;
  data.mode = LoaderMode::eval;
  apply_image_transform_options(options_.images, data);
  const std::vector<CapacityResult> results = evaluate(backend.forward_model(), data, capacities_, &comm);
  if (!metrics) return;
  line.break_line();
  std::cout << "evaluation at step " << progress.step << " on '" << data.split << "':\n";
  print_evaluation(std::cout, results);
  write_evaluation(options_.run_dir, data.split, progress.step, results);
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
    std::cout << "best so far (mean top-1 " << format_double(100 * top1) << "%): " << path.string() << "\n";
  }
}

}  // namespace mone
