#include "trainer/route_command.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/host_buffer.h"
#include "data/loader.h"
#include "data/split_reader.h"
#include "model/capacity.h"
#include "model/model.h"
#include "trainer/capacity_schedule.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/exit_codes.h"
#include "trainer/routing_picture.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

// The split's first `count` images, raw (for the pictures) and normalised as
// evaluation normalises them (for the model).
struct SampleImages {
  std::vector<uint8_t> raw;  // uint8 [count, H, W, C]
  HostBuffer normalised;     // float32 [count, H, W, C]
};

SampleImages read_first_images(const Dataset& data, int64_t count) {
  const int64_t pixels = data.shape.pixels();
  SampleImages images{std::vector<uint8_t>(static_cast<size_t>(count * pixels)),
                      HostBuffer(static_cast<size_t>(count * pixels))};
  const SplitReader reader(data, /*verify_checksums=*/true);
  const ImageTransform normalise(data.shape, data.mean, data.std, AugmentOptions{}, /*seed=*/0);
  for (int64_t i = 0; i < count; ++i) {
    reader.read(i, images.raw.data() + i * pixels);
    normalise.apply(images.raw.data() + i * pixels, /*epoch=*/0, i, images.normalised.data() + i * pixels);
  }
  return images;
}

// The expert of every token of every image at e_c, [count * N].
std::vector<int32_t> route(Model<float>& model, const SampleImages& images, int64_t count, double capacity) {
  std::vector<int64_t> samples(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) samples[static_cast<size_t>(i)] = i;  // the split's first images
  model.set_random_routing(kEvaluationRoutingKey, samples);
  model.forward(images.normalised.data(), count, plan_routing(model.config(), capacity));
  return model.routing().expert_of_token;
}

void print_tokens_per_expert(std::ostream& out, const std::string& name, double capacity, const int32_t* experts,
                             int64_t tokens, int64_t expert_count) {
  std::vector<int64_t> counts(static_cast<size_t>(expert_count), 0);
  for (int64_t n = 0; n < tokens; ++n) ++counts[static_cast<size_t>(experts[n])];
  out << name << "  e_c " << capacity << "  tokens per expert (smallest to full):";
  for (const int64_t c : counts) out << " " << c;
  out << "\n";
}

// V-MoE routes whole images: the table of how many of each class's images
// take each expert as their first (top-1) choice, over the whole split,
// printed and written to <out>/experts-by-class.csv.
int write_expert_class_table(const RouteOptions& options, const Checkpoint& checkpoint) {
  const ModelConfig& config = checkpoint.model;
  const Dataset data = Dataset::open(options.data, options.split);
  check_dataset_fits_model(data, config);
  Model<float> model(config, checkpoint.progress.seed);
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), model.params().values());
  LoaderOptions loading;
  loading.dir = options.data;
  loading.split = options.split;
  loading.global_batch = 100;
  loading.mode = LoaderMode::eval;
  Loader loader(loading);
  Batch batch;
  const int64_t E = config.experts, classes = config.classes;
  std::vector<int64_t> count(static_cast<size_t>(E * classes), 0);  // [expert, class]
  const RoutingPlan plan = plan_routing(config, 1.0);
  while (loader.next(batch)) {
    model.forward(batch.images.data(), batch.count, plan);
    const std::vector<int32_t>& experts = model.routing().expert_of_slot;
    for (int64_t b = 0; b < batch.count; ++b)
      ++count[static_cast<size_t>(experts[static_cast<size_t>(b * config.top_k)] * classes +
                                  batch.labels[static_cast<size_t>(b)])];
  }
  const fs::path out = options.out;
  std::error_code error;
  fs::create_directories(out, error);
  if (error) throw std::runtime_error("--out: cannot create '" + out.string() + "': " + error.message());
  std::ofstream csv(out / "experts-by-class.csv");
  csv << "class,name";
  for (int64_t e = 0; e < E; ++e) csv << ",expert_" << e;
  csv << "\n";
  std::cout << "checkpoint at step " << checkpoint.progress.step << ", split '" << options.split
            << "': images per top-1 expert\n  class";
  for (int64_t e = 0; e < E; ++e) std::cout << "  expert " << e;
  std::cout << "\n";
  for (int64_t c = 0; c < classes; ++c) {
    const std::string name =
        c < static_cast<int64_t>(data.class_names.size()) ? data.class_names[static_cast<size_t>(c)] : "";
    csv << c << "," << name;
    char cell[32];
    std::snprintf(cell, sizeof(cell), "  %5lld", static_cast<long long>(c));
    std::cout << cell;
    for (int64_t e = 0; e < E; ++e) {
      const int64_t n = count[static_cast<size_t>(e * classes + c)];
      csv << "," << n;
      std::snprintf(cell, sizeof(cell), "  %8lld", static_cast<long long>(n));
      std::cout << cell;
    }
    csv << "\n";
    std::cout << "  " << name << "\n";
  }
  if (!csv) throw std::runtime_error("cannot write '" + (out / "experts-by-class.csv").string() + "'");
  std::cout << "wrote " << (out / "experts-by-class.csv").string() << "\n";
  return kExitSuccess;
}

}  // namespace

int run_routing_pictures(const RouteOptions& options) {
  set_thread_count(options.threads);
  const Checkpoint checkpoint = read_checkpoint_or_newest(options.checkpoint, std::cerr);
  const ModelConfig& config = checkpoint.model;
  if (config.is_vmoe()) return write_expert_class_table(options, checkpoint);
  try {
    capacity_for(options.capacity, config.experts);
  } catch (const std::exception& error) {
    throw UsageError("--capacity: " + std::string(error.what()));
  }
  std::vector<double> grid_capacities;
  try {
    grid_capacities = parse_capacity_list(options.capacities, config.experts);
  } catch (const std::invalid_argument& error) {
    throw UsageError(std::string("--capacities: ") + error.what());
  }
  const Dataset data = Dataset::open(options.data, options.split);
  check_dataset_fits_model(data, config);
  if (options.images > data.samples) {
    throw UsageError("--images: " + std::to_string(options.images) + " is more than the " +
                     std::to_string(data.samples) + " images of split '" + options.split + "'");
  }
  const fs::path out = options.out;
  std::error_code error;
  fs::create_directories(out, error);
  if (error) throw std::runtime_error("--out: cannot create '" + out.string() + "': " + error.message());

  const SampleImages images = read_first_images(data, options.images);
  Model<float> model(config, checkpoint.progress.seed);
  std::copy(checkpoint.values.begin(), checkpoint.values.end(), model.params().values());
  const int64_t tokens = (config.image_height / config.patch) * (config.image_width / config.patch);
  const int64_t pixels = data.shape.pixels();
  auto picture = [&](const std::vector<int32_t>& experts, int64_t i) {
    return routing_picture(images.raw.data() + i * pixels, data.shape, config.patch, experts.data() + i * tokens,
                           config.experts, options.scale);
  };

  std::cout << "checkpoint at step " << checkpoint.progress.step << ", split '" << options.split << "':\n";
  const std::vector<int32_t> chosen = route(model, images, options.images, options.capacity);
  for (int64_t i = 0; i < options.images; ++i) {
    const std::string name = "image-" + std::to_string(i) + ".png";
    write_png(out / name, picture(chosen, i));
    print_tokens_per_expert(std::cout, name, options.capacity, chosen.data() + i * tokens, tokens, config.experts);
  }

  std::vector<std::vector<RgbImage>> rows;
  for (int64_t i = 0; i < options.images; ++i) {
    rows.push_back({upscale(images.raw.data() + i * pixels, data.shape, options.scale)});
  }
  for (const double capacity : grid_capacities) {
    const std::vector<int32_t> experts = route(model, images, options.images, capacity);
    for (int64_t i = 0; i < options.images; ++i) rows[static_cast<size_t>(i)].push_back(picture(experts, i));
  }
  write_png(out / "grid.png", grid_picture(rows));
  std::cout << "wrote " << options.images << " image-<i>.png and grid.png to " << out.string() << "\n";
  return kExitSuccess;
}

}  // namespace mone
