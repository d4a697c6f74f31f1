#include "trainer/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "data/dataset.h"
#include "model/model.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/training_backend.h"

namespace mone {

namespace fs = std::filesystem;

int run_evaluation(const EvalOptions& options, const World& world) {
  set_thread_count(options.threads);
  const fs::path where = options.checkpoint;
  const Checkpoint checkpoint = read_checkpoint_or_newest(where, std::cerr);
  const ModelConfig& config = checkpoint.model;

  const std::string split = evaluation_split(options.data, options.split);
  Dataset data = Dataset::open(options.data, split);
  // An encoded dataset is cropped to the size the model was trained for.
  if (data.storage == Storage::encoded) data.shape.height = data.shape.width = config.image_height;
  check_dataset_fits_model(data, config);
  std::vector<double> capacities;
  try {
    capacities = evaluation_capacities(options.capacities, config);
  } catch (const std::invalid_argument& error) {
    throw UsageError(std::string("--capacities: ") + error.what());
  }

  const std::unique_ptr<ForwardModel> model =
      make_forward_model(options.device, options.precision, config, checkpoint.values, options.batch, world);
  LoaderOptions loader;
  loader.dir = options.data;
  loader.split = split;
  loader.global_batch = options.batch;
  loader.mode = LoaderMode::eval;
  if (data.storage == Storage::encoded) loader.image_size = config.image_height;
  const std::vector<CapacityResult> results = *evaluate(*model, loader, capacities);

  std::cout << "checkpoint at step " << checkpoint.progress.step << ", split '" << split << "':\n";
  print_evaluation(std::cout, results);
  // A run directory, or the run directory of <run>/checkpoints/step-N.h5.
  const fs::path out = !options.out.empty()        ? fs::path(options.out)
                       : fs::is_directory(where) ? where
                                                 : where.parent_path().parent_path();
  // Never over another command's report (the training's of the same step).
  const fs::path stem = write_evaluation(out, split, checkpoint.progress.step, results, /*replace=*/false);
  std::cout << "wrote " << stem.string() << ".csv and .json\n";
  return kExitSuccess;
}

}  // namespace mone
