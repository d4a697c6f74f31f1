// Training-step throughput of the CPU model (forward + backward, and the
// AdamW update with --adamw), as a table
// or JSON lines. Not a test: bench/cpu_step.sh runs it beside PyTorch.
//
//   build/bench/mone-bench-step --preset tiny --batch 128 --capacities 1,0.5,0.3 --threads 1,2
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/options.h"
#include "model/adamw.h"
#include "model/flops.h"
#include "model/model.h"
#include "model/random.h"

namespace po = boost::program_options;


int main(int argc, char** argv) try {
  std::string preset, capacities_text, threads_text;
  int64_t batch, steps, warmup;
  bool json = false, adamw = false;
  po::options_description options("mone-bench-step: CPU training-step throughput");
  options.add_options()("help", "show this help")(
      "preset", po::value(&preset)->default_value("tiny"), "model preset (tiny, s16, b16)")(
      "batch", po::value(&batch)->default_value(128), "images per step")(
      "capacities", po::value(&capacities_text)->default_value("1,0.5,0.3"), "effective capacities e_c")(
      "threads", po::value(&threads_text)->default_value("1,2"), "thread counts")(
      "steps", po::value(&steps)->default_value(20), "timed steps (median reported)")(
      "warmup", po::value(&warmup)->default_value(3), "untimed steps first")(
      "adamw", po::bool_switch(&adamw), "include the AdamW update in the step")(
      "json", po::bool_switch(&json), "print JSON lines instead of a table");
  if (!mone::parse_options(argc, argv, options)) return 0;
  const auto capacities = mone::parse_list<double>(capacities_text, "capacities");
  const auto thread_counts = mone::parse_list<int>(threads_text, "threads");
  if (batch <= 0 || steps <= 0 || warmup < 0) throw po::error("--batch and --steps must be positive");

  const mone::ModelConfig config = mone::preset_config(preset);
  std::vector<float> images(batch * config.image_height * config.image_width * config.channels);
  std::vector<int32_t> labels(batch);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(mone::random_normal(7, 0, i));
  for (int64_t b = 0; b < batch; ++b) labels[b] = static_cast<int32_t>(mone::random_bits(7, 1, b) % config.classes);

  if (!json)
    std::printf("%-8s %7s %6s %9s %9s %10s %10s %9s\n", "impl", "threads", "e_c", "realised", "ms/step", "img/s",
                "GFLOP/s", "vs e_c=1");
  for (int threads : thread_counts) {
    mone::set_thread_count(threads);
    double dense_rate = 0;
    for (double capacity : capacities) {
      mone::Model<float> model(config, 1);
      mone::AdamW optimizer(model.params().infos(), model.params().numel(), mone::AdamWSettings{});
      std::vector<double> ms;
      for (int64_t s = 0; s < warmup + steps; ++s) {
        model.params().zero_grads();
        const auto start = std::chrono::steady_clock::now();
        model.forward_backward(images.data(), labels.data(), batch, plan_routing(model.config(), capacity));
        if (adamw) optimizer.step(model.params().values(), model.params().grads(), 1e-3);
        const auto stop = std::chrono::steady_clock::now();
        if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
      }
      std::sort(ms.begin(), ms.end());
      const double median = ms[ms.size() / 2];
      const double rate = 1000.0 * static_cast<double>(batch) / median;
      const auto& routing = model.routing();
      const double gflops =
          mone::training_flops_per_image(config, routing.plan.tokens_per_expert) * rate * 2.0 / 1e9;  // 2 FLOP per MAC
      if (capacity == 1.0) dense_rate = rate;
      if (json) {
        std::printf(
            "{\"impl\":\"mone\",\"optimizer\":\"%s\",\"preset\":\"%s\",\"batch\":%ld,\"threads\":%d,\"capacity\":%g,\"realised\":%.4f,"
            "\"ms_per_step\":%.3f,\"img_per_s\":%.1f,\"gflop_per_s\":%.2f}\n",
            adamw ? "adamw" : "none", preset.c_str(), static_cast<long>(batch), threads, capacity, routing.plan.realised_capacity, median, rate,
            gflops);
      } else {
        std::printf("%-8s %7d %6.2f %9.4f %9.2f %10.1f %10.2f %9s\n", "mone", threads, capacity,
                    routing.plan.realised_capacity, median, rate, gflops,
                    dense_rate > 0 ? (std::to_string(rate / dense_rate).substr(0, 4) + "x").c_str() : "-");
      }
      std::fflush(stdout);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mone-bench-step: error: " << e.what() << "\n";
  return 2;
}
