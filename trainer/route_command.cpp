#include "trainer/route_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/host_buffer.h"
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

}  // namespace

int run_routing_pictures(const RouteOptions& options) {
  set_thread_count(options.threads);
  const Checkpoint checkpoint = read_checkpoint_or_newest(options.checkpoint, std::cerr);
  const ModelConfig& config = checkpoint.model;
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
