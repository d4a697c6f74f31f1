// Evaluation of one set of weights at several effective capacities (method
// page, "One model, many budgets"): top-1, loss, realised e_c and forward
// GFLOPs per image at each, over one pass of an evaluation split.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "comm/communicator.h"
#include "data/loader.h"
#include "model/config.h"
#include "trainer/forward_model.h"

namespace mone {

struct CapacityResult {
  double requested = 0;
  double realised = 0;  // after flooring k_j = floor(c_j N)
  double top1 = 0;      // fraction correct
  double loss = 0;      // mean cross-entropy, no label smoothing
  double gflops = 0;    // forward, per image, 1 multiply-add = 1 FLOP
  int64_t samples = 0;
};

// "val" when the dataset has a validation split, else "test"; other names pass through.
std::string evaluation_split(const std::filesystem::path& data, const std::string& requested);

// Throws UsageError naming --data when the split's image shape or class count
// is not the checkpoint model's.
void check_dataset_fits_model(const Dataset& data, const ModelConfig& config);

// One pass of an evaluation loader over `options.split`; each batch runs at
// every capacity, so the data is read once. With `ranks`, the split is
// sharded over them (options.rank/world) and the correct counts, loss sums
// and sample counts are summed across ranks before the division, so every
// rank returns the exact totals of the whole split.
// The realised e_c and GFLOPs follow from e_c and the model alone (every
// image gets k_j tokens at expert j), so any ForwardModel reports them alike.
// `stop` (if given) is asked after every batch, on every rank alike; when
// it says true the pass ends at once and the result is empty.
std::optional<std::vector<CapacityResult>> evaluate(ForwardModel& model, const LoaderOptions& options,
                                                    const std::vector<double>& capacities,
                                                    Communicator* ranks = nullptr,
                                                    const std::function<bool()>& stop = nullptr);

void print_evaluation(std::ostream& out, const std::vector<CapacityResult>& results);
// A JSON array of one object per capacity (for reports and metrics.jsonl).
std::string evaluation_json(const std::vector<CapacityResult>& results);
// <dir>/eval/<split>-step-<8 digits>: a report's path without its extension.
// The split is in the name so a test-split evaluation never replaces the
// training's validation one of the same step.
std::filesystem::path report_stem(const std::filesystem::path& dir, const std::string& split, int64_t step);

// Writes the report's .csv and .json; returns the path without the
// extension. A training rewrites its own report of a step; `mone eval`
// passes replace = false and never overwrites a report: it takes the first
// free name of <stem>, <stem>.2, <stem>.3, ...
std::filesystem::path write_evaluation(const std::filesystem::path& dir, const std::string& split, int64_t step,
                                       const std::vector<CapacityResult>& results, bool replace);

}  // namespace mone
