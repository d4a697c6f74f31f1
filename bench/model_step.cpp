// Training-step throughput of the CPU model (forward + backward, and the
// AdamW update with --adamw), as a table or JSON lines. Not a test:
// bench/cpu_step.py runs it beside PyTorch.
//
//   build/bench/mone-bench-step --preset tiny --batch 128 --capacities 1,0.5,0.3 --threads 1,2
//
// --busy K also times every row again while K competing busy processes run
// (at nice --busy-nice, as another user's job on a shared node) and reports
// the slowdown. --parts prints instead where the step's time goes: every part
// of the step (bench/step_parts.h) with its ms, GFLOP and GFLOP/s at each e_c,
// their sum against the whole step, and the saving efficiency (speed-up over
// e_c = 1 divided by the FLOP ratio), beside OpenBLAS's single-core sgemm
// ceiling measured in the same run. The e_c are run in turn, a step of each
// per round, on one model (as training draws them), so that their ratios
// come from the same minutes of a shared machine.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "bench/options.h"
#include "bench/step_parts.h"
#include "model/adamw.h"
#include "model/flops.h"
#include "model/model.h"
#include "model/random.h"
#include "model/step.h"

namespace po = boost::program_options;

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Inputs {
  std::vector<float> images;
  std::vector<int32_t> labels;
};

Inputs random_inputs(const mone::ModelConfig& config, int64_t batch) {
  Inputs in;
  in.images.resize(batch * config.image_height * config.image_width * config.channels);
  in.labels.resize(batch);
  for (size_t i = 0; i < in.images.size(); ++i) in.images[i] = static_cast<float>(mone::random_normal(7, 0, i));
  for (int64_t b = 0; b < batch; ++b)
    in.labels[b] = static_cast<int32_t>(mone::random_bits(7, 1, b) % config.classes);
  return in;
}

// One step of the Model's own forward_backward (+ AdamW), in ms.
double model_step_ms(mone::Model<float>& model, mone::AdamW& optimizer, const Inputs& in, int64_t batch,
                     const mone::RoutingPlan& plan, bool adamw) {
  model.params().zero_grads();
  const auto start = Clock::now();
  model.forward_backward(in.images.data(), in.labels.data(), batch, plan);
  if (adamw) optimizer.step(model.params().values(), model.params().grads(), 1e-3);
  return ms_since(start);
}

// Step times (ms) at each plan after `warmup` untimed rounds: one model, as
// training runs it, and the plans taken in turn, a step of each per round, so
// that a slower spell of a shared machine falls on every e_c alike instead of
// on whichever ran then (this project's VMs moved by 20-30% between runs
// minutes apart).
std::vector<std::vector<double>> step_times(mone::Model<float>& model, mone::AdamW& optimizer, const Inputs& in,
                                            int64_t batch, const std::vector<mone::RoutingPlan>& plans, bool adamw,
                                            int64_t warmup, int64_t steps) {
  std::vector<std::vector<double>> ms(plans.size());
  for (int64_t s = 0; s < warmup + steps; ++s)
    for (size_t i = 0; i < plans.size(); ++i) {
      const double step = model_step_ms(model, optimizer, in, batch, plans[i], adamw);
      if (s >= warmup) ms[i].push_back(step);
    }
  return ms;
}

// ", chunks of N" when the step runs in them.
std::string chunk_label(int64_t batch, int64_t chunk_images) {
  return chunk_images > 0 && chunk_images < batch ? ", chunks of " + std::to_string(chunk_images) : "";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// K processes that keep a core busy (a loop over an 8 MB buffer, so caches and
// memory are shared too) until destroyed.
class BusyProcesses {
 public:
  BusyProcesses(int count, int niceness) {
    for (int k = 0; k < count; ++k) {
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("--busy: fork failed");
      if (pid == 0) {
        if (setpriority(PRIO_PROCESS, 0, niceness) != 0) _exit(1);
        std::vector<float> buffer(2 << 20, 1.0f);
        for (float scale = 1.0f;; scale = scale * 0.999f + 0.001f)
          for (float& v : buffer) v = v * scale + 0.5f;
      }
      children_.push_back(pid);
    }
    usleep(200000);  // let them start
  }
  ~BusyProcesses() {
    for (pid_t pid : children_) kill(pid, SIGKILL);
    for (pid_t pid : children_) waitpid(pid, nullptr, 0);
  }

 private:
  std::vector<pid_t> children_;
};

// OpenBLAS's sgemm on one thread at a size where it reaches its peak: the
// ceiling our step's GFLOP/s is read against, so the fastest of its calls.
double sgemm_ceiling_gflops() {
  const int64_t n = 768;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  double fastest_ms = 1e30;
  for (int call = 0; call < 21; ++call) {
    const auto start = Clock::now();
    mone::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    fastest_ms = std::min(fastest_ms, ms_since(start));
  }
  return 2.0 * n * n * n / (fastest_ms * 1e6);
}

// The step of model/step.h over the timed policy, charged part by part.
struct WorkspaceArena {
  mone::Workspace& workspace;
  template <class E>
  E* take(int64_t n, const char* /*purpose*/) {
    return workspace.take<E>(n);
  }
};

struct PartsRun {
  mone::PartTotals totals;
  double step_ms = 0;         // the timed run's mean step
  std::vector<double> model_steps;  // Model::forward_backward (+ AdamW), untimed ops
  double model_step_ms = 0;         // their median: the ratios' (one slow step moves a mean of few)
  double training_gflop = 0;  // per step, the FLOP counter's 3x forward
};

// Each round runs, for each plan in turn, the Model's step and then the same
// step over the timed policy (interleaved for the reason of step_times).
std::vector<PartsRun> run_parts(const mone::ModelConfig& config, int64_t batch, int64_t chunk_images,
                                const std::vector<mone::RoutingPlan>& plans, int64_t warmup, int64_t steps) {
  const Inputs in = random_inputs(config, batch);
  mone::Model<float> model(config, 1);
  model.set_chunk_images(chunk_images);
  // The images each pass of the timed step takes, as the Model's step splits them (on one
  // thread: --parts refuses chunks on more; the Model's step also adds each chunk's gradient
  // buffer in: in the Model step's time, not in the timed run's).
  const int64_t per_pass = chunk_images > 0 ? std::min(chunk_images, batch) : batch;
  const int64_t image_values = config.image_height * config.image_width * config.channels;
  mone::AdamW optimizer(model.params().infos(), model.params().numel(), mone::AdamWSettings{});
  mone::CpuStepOps<float> cpu(model.params(), model.config(), mone::TokenOrder::expert_sorted, 0.0f);
  mone::Workspace workspace;
  mone::StepActivations<mone::TimedStepOps> acts;
  std::vector<PartsRun> runs(plans.size());
  for (int64_t s = 0; s < warmup + steps; ++s)
    for (size_t i = 0; i < plans.size(); ++i) {
      const double model_ms = model_step_ms(model, optimizer, in, batch, plans[i], true);
      mone::PartTotals step_totals;
      mone::TimedStepOps ops(cpu, model.config(), step_totals);
      const auto start = Clock::now();
      mone::timed(step_totals, mone::Part::zeroing, 0, [&] { model.params().zero_grads(); });
      for (int64_t first = 0; first < batch; first += per_pass) {
        const int64_t images = std::min(per_pass, batch - first);
        const int32_t* labels = in.labels.data() + first;
        workspace.reset();
        WorkspaceArena arena{workspace};
        mone::plan_step(arena, ops, model.config(), images, true, acts);
        mone::step_forward(ops, model.config(), in.images.data() + first * image_values, plans[i], acts);
        mone::timed(step_totals, mone::Part::loss, 0, [&] {
          mone::cross_entropy_forward(acts.logits, labels, images, config.classes, acts.class_probs);
        });
        cpu.set_loss_batch(images == batch ? 0 : batch);
        mone::step_backward(ops, model.config(), labels, acts, {});
        workspace.settle();
      }
      mone::timed(step_totals, mone::Part::optimizer, 0,
                  [&] { optimizer.step(model.params().values(), model.params().grads(), 1e-3); });
      if (s < warmup) continue;
      PartsRun& run = runs[i];
      run.step_ms += ms_since(start) / steps;
      run.model_steps.push_back(model_ms);
      for (size_t p = 0; p < step_totals.ms.size(); ++p) {
        run.totals.ms[p] += step_totals.ms[p] / steps;
        run.totals.macs[p] += step_totals.macs[p] / steps;
      }
    }
  for (size_t i = 0; i < plans.size(); ++i) {
    runs[i].model_step_ms = median(runs[i].model_steps);
    runs[i].training_gflop = mone::training_flops_per_image(config, plans[i].tokens_per_expert) * batch * 2.0 / 1e9;
  }
  return runs;
}

void print_parts(const std::string& preset, const mone::ModelConfig& config, int64_t batch, int64_t chunk_images,
                 const std::vector<double>& capacities, int threads, int64_t warmup, int64_t steps, double ceiling) {
  std::vector<mone::RoutingPlan> plans;
  for (double capacity : capacities) plans.push_back(plan_routing(config, capacity));
  const std::vector<PartsRun> runs = run_parts(config, batch, chunk_images, plans, warmup, steps);
  std::printf(
      "\n# %s, batch %ld%s, %d thread(s), forward + backward + AdamW; ms and GFLOP per step (mean of %ld "
      "steps after %ld), 2 FLOP per multiply-add\n",
      preset.c_str(), static_cast<long>(batch), chunk_label(batch, chunk_images).c_str(), threads,
      static_cast<long>(steps), static_cast<long>(warmup));
  std::printf("%-24s", "part");
  for (double c : capacities) std::printf(" | e_c %-4g %7s %6s %7s", c, "ms", "GFLOP", "GFLOP/s");
  std::printf("\n");
  for (int p = 0; p < static_cast<int>(mone::Part::count); ++p) {
    std::printf("%-24s", mone::part_name(static_cast<mone::Part>(p)));
    for (const PartsRun& r : runs) {
      const double ms = r.totals.ms[p], gflop = 2.0 * r.totals.macs[p] / 1e9;
      if (gflop > 0)
        std::printf(" | %8s %7.2f %6.3f %7.1f", "", ms, gflop, gflop / ms * 1e3);
      else
        std::printf(" | %8s %7.2f %6s %7s", "", ms, "-", "-");
    }
    std::printf("\n");
  }
  const auto line = [&](const char* name, auto value, const char* format) {
    std::printf("%-24s", name);
    for (size_t i = 0; i < runs.size(); ++i) {
      std::printf(" | %8s ", "");
      std::printf(format, value(i));
    }
    std::printf("\n");
  };
  const auto parts_sum = [&](size_t i) {
    return std::accumulate(runs[i].totals.ms.begin(), runs[i].totals.ms.end(), 0.0);
  };
  const auto parts_gflop = [&](size_t i) {
    return 2.0 * std::accumulate(runs[i].totals.macs.begin(), runs[i].totals.macs.end(), 0.0) / 1e9;
  };
  line("sum of the parts", parts_sum, "%7.2f");
  line("step, timed run", [&](size_t i) { return runs[i].step_ms; }, "%7.2f");
  line("unaccounted (ms, %)", [&](size_t i) { return runs[i].step_ms - parts_sum(i); }, "%7.2f");
  line("  as % of the step", [&](size_t i) { return 100.0 * (runs[i].step_ms - parts_sum(i)) / runs[i].step_ms; },
       "%6.1f%%");
  line("step, Model (median)", [&](size_t i) { return runs[i].model_step_ms; }, "%7.2f");
  line("GFLOP counted by parts", parts_gflop, "%7.3f");
  line("GFLOP, FLOP counter", [&](size_t i) { return runs[i].training_gflop; }, "%7.3f");
  line("GFLOP/s (Model step)", [&](size_t i) { return runs[i].training_gflop / runs[i].model_step_ms * 1e3; },
       "%7.1f");
  line("  of the sgemm ceiling",
       [&](size_t i) { return 100.0 * runs[i].training_gflop / runs[i].model_step_ms * 1e3 / (ceiling * threads); },
       "%6.1f%%");
  line("img/s (Model step)", [&](size_t i) { return 1000.0 * batch / runs[i].model_step_ms; }, "%7.1f");
  line("speed-up vs e_c 1", [&](size_t i) { return runs[0].model_step_ms / runs[i].model_step_ms; }, "%6.2fx");
  line("FLOP ratio vs e_c 1", [&](size_t i) { return runs[0].training_gflop / runs[i].training_gflop; }, "%6.2fx");
  line("saving efficiency", [&](size_t i) {
    return (runs[0].model_step_ms / runs[i].model_step_ms) / (runs[0].training_gflop / runs[i].training_gflop);
  }, "%7.2f");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) try {
  mone::restart_with_passive_openmp_wait(argv);  // as `mone` runs (model/model.h)
  std::string preset, capacities_text, threads_text;
  int64_t batch, steps, warmup, chunk_images;
  int busy = 0, busy_nice = 10;
  bool json = false, adamw = false, parts = false;
  po::options_description options("mone-bench-step: CPU training-step throughput");
  options.add_options()("help", "show this help")("preset", po::value(&preset)->default_value("tiny"),
                                                  "model preset (tiny, s16, b16)")(
      "batch", po::value(&batch)->default_value(128), "images per step")(
      "chunk-images", po::value(&chunk_images)->default_value(0),
      "run each step's batch in chunks of this many images (0: whole; Model::set_chunk_images)")(
      "capacities", po::value(&capacities_text)->default_value("1,0.5,0.3"),
      "effective capacities e_c (first: the reference of the ratios)")(
      "threads", po::value(&threads_text)->default_value("1,2"), "thread counts")(
      "steps", po::value(&steps)->default_value(20),
      "timed rounds, one step of each e_c per round (median reported; --parts: mean)")(
      "warmup", po::value(&warmup)->default_value(3), "untimed rounds first")(
      "adamw", po::bool_switch(&adamw), "include the AdamW update in the step (--parts always does)")(
      "parts", po::bool_switch(&parts), "print where the step's time goes, part by part")(
      "busy", po::value(&busy)->default_value(0), "also time each row beside this many busy processes")(
      "busy-nice", po::value(&busy_nice)->default_value(10), "niceness of the busy processes")(
      "json", po::bool_switch(&json), "print JSON lines instead of a table");
  if (!mone::parse_options(argc, argv, options)) return 0;
  const auto capacities = mone::parse_list<double>(capacities_text, "capacities");
  const auto thread_counts = mone::parse_list<int>(threads_text, "threads");
  if (batch <= 0 || steps <= 0 || warmup < 0) throw po::error("--batch and --steps must be positive");
  if (busy < 0) throw po::error("--busy must be 0 or more");
  if (chunk_images < 0) throw po::error("--chunk-images must be 0 or more");
  if (parts && chunk_images > 0 && chunk_images < batch &&
      std::any_of(thread_counts.begin(), thread_counts.end(), [](int t) { return t > 1; }))
    throw po::error(
        "--parts with --chunk-images takes --threads 1 only: on more threads the chunks run side by side, "
        "so their parts do not add up to the step");

  const mone::ModelConfig config = mone::preset_config(preset);
  if (parts) {
    mone::set_thread_count(1);
    const double ceiling = sgemm_ceiling_gflops();
    std::printf("# OpenBLAS sgemm 768^3, 1 thread, fastest of 21 calls: %.1f GFLOP/s (the ceiling; x threads for more)\n",
                ceiling);
    for (int threads : thread_counts) {
      mone::set_thread_count(threads);
      print_parts(preset, config, batch, chunk_images, capacities, threads, warmup, steps, ceiling);
    }
    return 0;
  }

  const Inputs in = random_inputs(config, batch);
  if (!json) {
    if (!chunk_label(batch, chunk_images).empty())
      std::printf("# %s, batch %ld%s\n", preset.c_str(), static_cast<long>(batch),
                  chunk_label(batch, chunk_images).c_str());
    std::printf("%-8s %7s %6s %9s %9s %10s %10s %9s", "impl", "threads", "e_c", "realised", "ms/step", "img/s",
                "GFLOP/s", "vs e_c=1");
    if (busy > 0) std::printf(" %10s %9s", "busy ms", "slowdown");
    std::printf("\n");
  }
  std::vector<mone::RoutingPlan> plans;
  for (double capacity : capacities) plans.push_back(plan_routing(config, capacity));
  for (int threads : thread_counts) {
    mone::set_thread_count(threads);
    mone::Model<float> model(config, 1);
    model.set_chunk_images(chunk_images);
    mone::AdamW optimizer(model.params().infos(), model.params().numel(), mone::AdamWSettings{});
    const auto quiet = step_times(model, optimizer, in, batch, plans, adamw, warmup, steps);
    std::vector<std::vector<double>> beside_busy;
    if (busy > 0) {
      BusyProcesses competitors(busy, busy_nice);
      beside_busy = step_times(model, optimizer, in, batch, plans, adamw, warmup, steps);
    }
    double dense_rate = 0;
    for (size_t i = 0; i < plans.size(); ++i) {
      const mone::RoutingPlan& plan = plans[i];
      const double ms = median(quiet[i]), busy_ms = busy > 0 ? median(beside_busy[i]) : 0;
      const double rate = 1000.0 * static_cast<double>(batch) / ms;
      const double gflops =
          mone::training_flops_per_image(config, plan.tokens_per_expert) * rate * 2.0 / 1e9;  // 2 FLOP per MAC
      if (dense_rate == 0) dense_rate = rate;
      if (json) {
        std::printf(
            "{\"impl\":\"mone\",\"optimizer\":\"%s\",\"preset\":\"%s\",\"batch\":%ld,\"chunk_images\":%ld,"
            "\"threads\":%d,\"capacity\":%g,"
            "\"realised\":%.4f,\"ms_per_step\":%.3f,\"img_per_s\":%.1f,\"gflop_per_s\":%.2f",
            adamw ? "adamw" : "none", preset.c_str(), static_cast<long>(batch), static_cast<long>(chunk_images),
            threads, capacities[i], plan.realised_capacity, ms, rate, gflops);
        if (busy > 0) std::printf(",\"busy\":%d,\"busy_ms_per_step\":%.3f", busy, busy_ms);
        std::printf("}\n");
      } else {
        std::printf("%-8s %7d %6.2f %9.4f %9.2f %10.1f %10.2f %8.2fx", "mone", threads, capacities[i],
                    plan.realised_capacity, ms, rate, gflops, rate / dense_rate);
        if (busy > 0) std::printf(" %10.2f %8.2fx", busy_ms, busy_ms / ms);
        std::printf("\n");
      }
      std::fflush(stdout);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mone-bench-step: error: " << e.what() << "\n";
  return 2;
}
