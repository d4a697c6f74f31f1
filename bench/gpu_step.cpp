// Training-step throughput of the device model: batch upload (pinned, copy
// stream), forward, backward, gradient clipping and the fused AdamW step,
// timed with CUDA events, at each
// effective capacity. Prints one table row per e_c (and JSON lines with
// --json) for docs/cuda.md; bench/torch_gpu_step.py measures PyTorch on the
// same shapes.
//
//   mone-bench-gpu-step [--preset s16] [--batch 256] [--precision bf16|fp32]
//                       [--attention cudnn|fused] [--capacities 1,0.5,0.3]
//                       [--warmup 5] [--steps 20] [--graph] [--json]
// --graph replays forward, backward and clipping as one CUDA graph per e_c
// (model/cuda/step_graph.h); AdamW runs outside it. --attention fused keeps
// cuDNN's attention out (bf16 uses it by default in builds with cuDNN); the
// table ends with the attention report: which implementation served what.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/capacity.h"
#include "model/config.h"
#include "model/cuda/backend.h"
#include "model/flops.h"
#include "model/parameters.h"
#include "model/random.h"

namespace {

struct Options {
  std::string preset = "s16";
  int64_t batch = 256;
  std::string precision = "bf16";
  std::string attention = "cudnn";
  std::vector<double> capacities = {1.0, 0.5, 0.3};
  int warmup = 5;
  int steps = 20;
  bool graph = false;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: mone-bench-gpu-step [--preset tiny|s16|b16] [--batch N] [--precision bf16|fp32]\n"
    "                           [--attention cudnn|fused] [--capacities 1,0.5,0.3] [--warmup N] [--steps N] [--graph] [--json]\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--preset") {
      o.preset = value();
    } else if (arg == "--batch") {
      o.batch = std::stoll(value());
    } else if (arg == "--precision") {
      o.precision = value();
      if (o.precision != "bf16" && o.precision != "fp32")
        throw std::invalid_argument("--precision must be bf16 or fp32, not " + o.precision);
    } else if (arg == "--attention") {
      o.attention = value();
      if (o.attention != "cudnn" && o.attention != "fused")
        throw std::invalid_argument("--attention must be cudnn or fused, not " + o.attention);
    } else if (arg == "--capacities") {
      o.capacities.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) o.capacities.push_back(std::stod(item));
    } else if (arg == "--warmup") {
      o.warmup = std::stoi(value());
    } else if (arg == "--steps") {
      o.steps = std::stoi(value());
    } else if (arg == "--graph") {
      o.graph = true;
    } else if (arg == "--json") {
      o.json = true;
    } else {
      throw std::invalid_argument("unknown option " + arg + "\n" + kUsage);
    }
  }
  return o;
}

template <class T>
void run(const Options& o) {
  using namespace mone;
  const ModelConfig config = preset_config(o.preset);
  cuda::DeviceContext context;
  cuda::DeviceModel<T> model(config, o.batch, context);
  model.set_cudnn_attention(o.attention == "cudnn");
  ParameterSet<float> params(config);
  params.initialise(1, InitScheme::small);
  model.load_parameters(params.values());
  cuda::DeviceAdamW optimizer(model.infos(), model.numel(), AdamWSettings{}, context);

  // One random batch in both pinned slots of the uploader; every step uploads
  // a slot again (copy stream, overlapping the previous step), as training does.
  cuda::BatchUpload<T> batches(config, o.batch, context);
  const int64_t pixels = o.batch * config.image_height * config.image_width * config.channels;
  std::vector<float> images(pixels);
  std::vector<int32_t> labels(o.batch);
  for (int64_t i = 0; i < pixels; ++i) images[i] = static_cast<float>(random_normal(7, 0, i));
  for (int64_t i = 0; i < o.batch; ++i) labels[i] = static_cast<int32_t>(random_bits(7, 1, i) % config.classes);
  for (int slot = 0; slot < 2; ++slot) {
    std::copy(images.begin(), images.end(), batches.host_images());
    std::copy(labels.begin(), labels.end(), batches.host_labels());
    batches.upload(o.batch);
  }
  cuda::DeviceBuffer scalars(2 * sizeof(double), "loss and norm");
  float* loss = scalars.as<float>();
  double* norm = reinterpret_cast<double*>(scalars.as<char>() + sizeof(double));

  cudaEvent_t start, stop;
  MONE_CUDA_CHECK(cudaEventCreate(&start));
  MONE_CUDA_CHECK(cudaEventCreate(&stop));
  if (!o.json) {
    std::printf("%s, batch %lld, %s: parameters %s, gradients %s, moments %s, activation workspace %s\n",
                o.preset.c_str(), static_cast<long long>(o.batch), o.precision.c_str(),
                cuda::describe_bytes(model.numel() * (sizeof(float) + sizeof(T))).c_str(),
                cuda::describe_bytes(model.numel() * sizeof(float)).c_str(),
                cuda::describe_bytes(2 * model.numel() * sizeof(float)).c_str(),
                cuda::describe_bytes(model.workspace_bytes()).c_str());
    std::printf("%-6s %-9s %-6s %-9s %10s %10s %12s\n", "e_c", "realised", "batch", "precision", "ms/step", "img/s",
                "TFLOP/s");
  }
  cuda::StepGraphs graphs(context);
  for (const double ec : o.capacities) {
    const RoutingPlan plan = plan_routing(config, ec);
    auto gradients = [&] {
      model.zero_grads();
      model.forward_backward(batches.images(), batches.labels(), o.batch, plan, loss);
      cuda::clip_grad_norm(model.grads(), model.numel(), 1.0, norm, context);
    };
    bool warm = false;  // the first step runs uncaptured: it creates the cuBLASLt plans
    auto step = [&] {
      batches.upload(o.batch);
      if (o.graph && warm)
        graphs.launch(cuda::StepKey{plan.tokens_per_expert, o.batch}, gradients);
      else
        gradients();
      warm = true;
      optimizer.step<T>(model.values(), model.grads(), 1e-4, model.compute_values(), context);
    };
    for (int i = 0; i < std::max(o.warmup, 1); ++i) step();
    MONE_CUDA_CHECK(cudaEventRecord(start, context.stream()));
    for (int i = 0; i < o.steps; ++i) step();
    MONE_CUDA_CHECK(cudaEventRecord(stop, context.stream()));
    MONE_CUDA_CHECK(cudaEventSynchronize(stop));
    float total_ms = 0;
    MONE_CUDA_CHECK(cudaEventElapsedTime(&total_ms, start, stop));
    const double ms = total_ms / o.steps, img_per_s = o.batch / (ms / 1e3);
    const double tflops = training_flops_per_image(config, plan.tokens_per_expert) * img_per_s / 1e12;
    if (o.json)
      std::printf("{\"impl\": \"mone-cuda%s%s\", \"preset\": \"%s\", \"capacity\": %g, \"realised\": %.4f, \"batch\": %lld, "
                  "\"precision\": \"%s\", \"ms_per_step\": %.3f, \"img_per_s\": %.1f, \"tflop_per_s\": %.2f}\n",
                  o.attention == "fused" ? "-fused-attention" : "", o.graph ? "-graph" : "", o.preset.c_str(), ec,
                  plan.realised_capacity, static_cast<long long>(o.batch), o.precision.c_str(), ms, img_per_s,
                  tflops);
    else
      std::printf("%-6g %-9.4f %-6lld %-9s %10.2f %10.1f %12.2f\n", ec, plan.realised_capacity,
                  static_cast<long long>(o.batch), o.precision.c_str(), ms, img_per_s, tflops);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (!o.json) {
    const std::vector<std::string> report = model.attention_report();
    std::printf("attention: %s\n", report.empty() ? "our fused kernel" : "");
    for (const std::string& line : report) std::printf("  %s\n", line.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (o.precision == "bf16")
      run<mone::cuda::bf16>(o);
    else
      run<float>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mone-bench-gpu-step: %s\n", e.what());
    return 1;
  }
  return 0;
}
