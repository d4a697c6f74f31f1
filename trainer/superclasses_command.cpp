#include "trainer/superclasses_command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "data/dataset.h"
#include "data/loader.h"
#include "model/model.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/superclasses.h"
#include "trainer/training_backend.h"

namespace mone {

namespace {

// [classes, classes] counts, row = label, column = top-1 prediction, of the
// model at e_c 1 (a dense model's only budget) over one pass of the split.
std::vector<int64_t> confusion_matrix(ForwardModel& model, const LoaderOptions& options) {
  const ModelConfig& config = model.config();
  const int64_t classes = config.classes;
  const RoutingPlan plan = plan_routing(config, 1.0);
  std::vector<int64_t> counts(static_cast<size_t>(classes * classes), 0);
  Loader loader(options);
  Batch batch;
  while (loader.next(batch)) {
    const float* logits = model.logits(batch, plan);
    for (int64_t b = 0; b < batch.count; ++b) {
      const float* row = logits + b * classes;
      const int64_t predicted = std::max_element(row, row + classes) - row;
      ++counts[static_cast<size_t>(batch.labels[static_cast<size_t>(b)] * classes + predicted)];
    }
  }
  return counts;
}

std::string class_name(const Dataset& data, int64_t c) {
  return c < static_cast<int64_t>(data.class_names.size()) ? data.class_names[static_cast<size_t>(c)]
                                                           : std::to_string(c);
}

}  // namespace

int run_superclasses(const SuperclassOptions& options) {
  set_thread_count(options.threads);
  const Checkpoint checkpoint = read_checkpoint_or_newest(options.checkpoint, std::cerr);
  const ModelConfig& config = checkpoint.model;
  if (options.groups > config.classes)
    throw UsageError("--groups: " + std::to_string(options.groups) + " super-classes of " +
                     std::to_string(config.classes) + " classes");
  const std::string split = evaluation_split(options.data, options.split);
  const Dataset data = Dataset::open(options.data, split);
  check_dataset_fits_model(data, config);

  OwnedCpuModel model(config, 0);
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), model.model().params().values());
  LoaderOptions loader;
  loader.dir = options.data;
  loader.split = split;
  loader.global_batch = options.batch;
  loader.mode = LoaderMode::eval;
  const std::vector<int64_t> confusion = confusion_matrix(model, loader);
  const Superclasses groups = cluster_confusion(confusion, config.classes, options.groups);

  const int64_t classes = config.classes;
  std::cout << "confusion on '" << split << "' (row: label, column: prediction), checkpoint at step "
            << checkpoint.progress.step << ":\n";
  for (int64_t i = 0; i < classes; ++i) {
    char cell[16];
    for (int64_t j = 0; j < classes; ++j) {
      std::snprintf(cell, sizeof(cell), "%6lld", static_cast<long long>(confusion[i * classes + j]));
      std::cout << cell;
    }
    std::cout << "  " << class_name(data, i) << "\n";
  }
  std::vector<std::string> comment = {
      "mone superclasses: " + std::to_string(groups.count) + " super-classes of '" + options.checkpoint +
          "' (step " + std::to_string(checkpoint.progress.step) + ")",
      "average-linkage clustering of the symmetrised confusion rates on split '" + split + "'"};
  for (int64_t g = 0; g < groups.count; ++g) {
    std::string members;
    for (int64_t c = 0; c < classes; ++c)
      if (groups.of_class[static_cast<size_t>(c)] == g) members += (members.empty() ? "" : ", ") + class_name(data, c);
    comment.push_back("super-class " + std::to_string(g) + ": " + members);
    std::cout << comment.back() << "\n";
  }
  write_superclasses(options.out, groups, comment);
  std::cout << "wrote " << options.out << "\n";
  return kExitSuccess;
}

}  // namespace mone
