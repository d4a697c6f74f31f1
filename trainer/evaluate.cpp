#include "trainer/evaluate.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <stdexcept>

#include "comm/host_values.h"
#include "data/dataset.h"
#include "model/capacity.h"
#include "model/flops.h"
#include "model/ops.h"
#include "trainer/exit_codes.h"
#include "trainer/metrics.h"

namespace mone {

std::string evaluation_split(const std::filesystem::path& data, const std::string& requested) {
  if (requested != "auto") return requested;
  return read_manifest(data).splits.count("val") ? "val" : "test";
}

void check_dataset_fits_model(const Dataset& data, const ModelConfig& config) {
  if (data.shape.height != config.image_height || data.shape.width != config.image_width ||
      data.shape.channels != config.channels || data.classes != config.classes) {
    throw UsageError("--data: the dataset has " + data.shape.to_string() + " images and " +
                     std::to_string(data.classes) + " classes; the model takes " +
                     std::to_string(config.image_height) + "x" + std::to_string(config.image_width) + "x" +
                     std::to_string(config.channels) + " and " + std::to_string(config.classes));
  }
}

std::optional<std::vector<CapacityResult>> evaluate(ForwardModel& model, const LoaderOptions& options,
                                                    const std::vector<double>& capacities, Communicator* ranks,
                                                    const std::function<bool()>& stop) {
  std::vector<CapacityResult> results(capacities.size());
  std::vector<double> loss_sums(capacities.size(), 0.0);
  std::vector<int64_t> correct(capacities.size(), 0);
  const ModelConfig& config = model.config();
  const int64_t classes = config.classes;
  std::vector<RoutingPlan> plans;
  for (size_t i = 0; i < capacities.size(); ++i) {
    plans.push_back(plan_routing(config, capacities[i]));
    results[i].requested = plans[i].requested_capacity;
    results[i].realised = plans[i].realised_capacity;
    results[i].gflops = plans[i].forward_flops_per_image / 1e9;
  }
  std::vector<float> probs;
  LoaderOptions loading = options;
  loading.allocator = &model.batch_allocator();
  Loader loader(loading);
  Batch batch;
  int64_t samples = 0;
  while (loader.next(batch)) {
    if (batch.count == 0) {  // a rank past the end of the split in the last global batch
      if (stop && stop()) return std::nullopt;
      continue;
    }
    probs.resize(static_cast<size_t>(batch.count * classes));
    for (size_t i = 0; i < capacities.size(); ++i) {
      const float* logits = model.logits(batch, plans[i]);
      loss_sums[i] += static_cast<double>(cross_entropy_forward(logits, batch.labels.data(), batch.count, classes,
                                                                probs.data())) *
                      static_cast<double>(batch.count);
      for (int64_t b = 0; b < batch.count; ++b) {
        const float* row = logits + b * classes;
        correct[i] += std::max_element(row, row + classes) - row == batch.labels[static_cast<size_t>(b)];
      }
    }
    samples += batch.count;
    if (stop && stop()) return std::nullopt;
  }
  if (ranks) {
    // Counts are integers below 2^53, exact in double; loss sums are added in
    // rank order, the same bits on every rank.
    std::vector<double> totals(loss_sums);
    totals.insert(totals.end(), correct.begin(), correct.end());
    totals.push_back(static_cast<double>(samples));
    sum_over_ranks(*ranks, totals, "evaluation of '" + options.split + "'");
    const size_t n = capacities.size();
    for (size_t i = 0; i < n; ++i) {
      loss_sums[i] = totals[i];
      correct[i] = static_cast<int64_t>(totals[n + i]);
    }
    samples = static_cast<int64_t>(totals[2 * n]);
  }
  if (samples == 0) throw std::runtime_error("evaluation split '" + options.split + "' has no samples");
  for (size_t i = 0; i < capacities.size(); ++i) {
    results[i].samples = samples;
    results[i].top1 = static_cast<double>(correct[i]) / static_cast<double>(samples);
    results[i].loss = loss_sums[i] / static_cast<double>(samples);
  }
  return results;
}

void print_evaluation(std::ostream& out, const std::vector<CapacityResult>& results) {
  char line[128];
  out << "  e_c req  e_c real   top-1     loss   GFLOPs/img\n";
  for (const CapacityResult& r : results) {
    std::snprintf(line, sizeof(line), "  %7.3f  %8.4f  %6.2f%%  %7.4f  %11.5f\n", r.requested, r.realised,
                  100.0 * r.top1, r.loss, r.gflops);
    out << line;
  }
}

std::string evaluation_json(const std::vector<CapacityResult>& results) {
  std::string json = "[";
  for (size_t i = 0; i < results.size(); ++i) {
    const CapacityResult& r = results[i];
    JsonRecord record;
    record.add("requested_capacity", r.requested)
        .add("realised_capacity", r.realised)
        .add("top1", r.top1)
        .add("loss", r.loss)
        .add("gflops_per_image", r.gflops)
        .add("samples", r.samples);
    json += (i ? ", " : "") + record.str();
  }
  return json + "]";
}

std::filesystem::path report_stem(const std::filesystem::path& dir, const std::string& split, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "-step-%08lld", static_cast<long long>(step));
  return dir / "eval" / (split + name);
}

std::filesystem::path write_evaluation(const std::filesystem::path& dir, const std::string& split, int64_t step,
                                       const std::vector<CapacityResult>& results, bool replace) {
  std::filesystem::create_directories(dir / "eval");
  const std::filesystem::path first = report_stem(dir, split, step);
  std::filesystem::path stem = first;
  const auto taken = [](std::filesystem::path s) {
    return std::filesystem::exists(s += ".csv") || std::filesystem::exists(s.replace_extension(".json"));
  };
  for (int n = 2; !replace && taken(stem); ++n) stem = first.string() + "." + std::to_string(n);
  std::filesystem::path csv_path = stem, json_path = stem;
  csv_path += ".csv";
  json_path += ".json";
  std::ofstream csv(csv_path);
  csv << "requested_capacity,realised_capacity,top1,loss,gflops_per_image,samples\n";
  for (const CapacityResult& r : results) {
    csv << format_double(r.requested) << "," << format_double(r.realised) << "," << format_double(r.top1) << ","
        << format_double(r.loss) << "," << format_double(r.gflops) << "," << r.samples << "\n";
  }
  std::ofstream json(json_path);
  json << evaluation_json(results) << "\n";
  if (!csv || !json) throw std::runtime_error("cannot write the evaluation report '" + stem.string() + ".*'");
  return stem;
}

}  // namespace mone
