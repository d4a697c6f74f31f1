// Time of each op of one block, forward and backward, at a preset's shapes:
// which work scales with e_c and which does not. Not a test.
//
//   source scripts/blas-env.sh && build/bench/mone-bench-ops --preset tiny --batch 128 --capacities 1,0.5
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/options.h"
#include "bench/timing.h"
#include "model/model.h"
#include "model/routing_plan.h"
#include "model/random.h"

namespace po = boost::program_options;

namespace {
std::vector<float> random_buffer(int64_t n, uint64_t stream) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(0.1 * mone::random_normal(3, stream, i));
  return v;
}
}  // namespace

int main(int argc, char** argv) try {
  mone::restart_with_passive_openmp_wait(argv);  // as `mone` runs (model/model.h)
  std::string preset, capacities_text;
  int64_t batch;
  int threads, repeats;
  po::options_description options("mone-bench-ops: per-op times of one block");
  options.add_options()("help", "show this help")("preset", po::value(&preset)->default_value("tiny"), "model preset")(
      "batch", po::value(&batch)->default_value(128), "images")(
      "capacities", po::value(&capacities_text)->default_value("1,0.5"), "effective capacities e_c")(
      "threads", po::value(&threads)->default_value(1), "threads")(
      "repeats", po::value(&repeats)->default_value(15), "timed calls per op (median reported)");
  if (!mone::parse_options(argc, argv, options)) return 0;
  const auto capacities = mone::parse_list<double>(capacities_text, "capacities");

  mone::set_thread_count(threads);
  const mone::ModelConfig c = mone::preset_config(preset);
  const int64_t N = c.tokens(), D = c.dim, H = c.heads, hidden = c.hidden(), M = batch * N;
  auto x = random_buffer(M * D, 1), dy = random_buffer(M * D, 2), qkv = random_buffer(M * 3 * D, 3);
  auto h = random_buffer(M * hidden, 4), dh = random_buffer(M * hidden, 5);
  auto w_in = random_buffer(D * hidden, 6), w_out = random_buffer(hidden * D, 7), bias = random_buffer(hidden, 8);
  auto gain = random_buffer(D, 9);
  std::vector<float> out(M * hidden), dx(M * hidden), probs(batch * H * N * N), dqkv(M * 3 * D), mean(M), rstd(M),
      dw(D * hidden), db(hidden);
  const mone::TokenLayout layout = mone::TokenLayout::token_major(batch, N);

  std::printf("# %s, batch %ld, %d thread(s); ms per call, median of %d\n", preset.c_str(), static_cast<long>(batch),
              threads, repeats);
  std::printf("%-34s %10s\n", "op (one block)", "ms");
  auto row = [&](const std::string& name, double ms) { std::printf("%-34s %10.3f\n", name.c_str(), ms); };
  row("attention forward (fused)", mone::median_ms([&] { mone::attention_forward(qkv.data(), layout, H, D, out.data(), probs.data()); }, repeats));
  row("attention backward (fused)", mone::median_ms([&] { mone::attention_backward(dy.data(), qkv.data(), probs.data(), layout, H, D, dqkv.data()); }, repeats));
  row("attention forward, reference", mone::median_ms([&] { mone::attention_reference_forward(qkv.data(), layout, H, D, out.data(), probs.data()); }, repeats));
  row("attention backward, reference", mone::median_ms([&] { mone::attention_reference_backward(dy.data(), qkv.data(), probs.data(), layout, H, D, dqkv.data()); }, repeats));
  row("layernorm forward", mone::median_ms([&] { mone::layernorm_forward(x.data(), M, D, gain.data(), gain.data(), out.data(), mean.data(), rstd.data()); }, repeats));
  row("layernorm backward", mone::median_ms([&] { mone::layernorm_backward(dy.data(), x.data(), mean.data(), rstd.data(), gain.data(), M, D, dx.data(), db.data(), db.data()); }, repeats));
  row("gelu forward", mone::median_ms([&] { mone::gelu_forward(h.data(), M * hidden, out.data()); }, repeats));
  row("gelu backward", mone::median_ms([&] { mone::gelu_backward(dh.data(), h.data(), M * hidden, dx.data()); }, repeats));
  for (double capacity : capacities) {
    const auto groups = mone::expert_sorted_groups(c, mone::plan_routing(c, capacity), batch);
    const std::string at = " e_c " + std::to_string(capacity).substr(0, 4);
    row("fc1 (nested in) forward" + at, mone::median_ms([&] { mone::nested_in_forward(x.data(), D, groups, w_in.data(), bias.data(), hidden, out.data()); }, repeats));
    row("fc1 (nested in) backward" + at, mone::median_ms([&] { mone::nested_in_backward(dh.data(), x.data(), D, groups, w_in.data(), hidden, dx.data(), dw.data(), db.data()); }, repeats));
    row("fc2 (nested out) forward" + at, mone::median_ms([&] { mone::nested_out_forward(h.data(), hidden, groups, w_out.data(), bias.data(), D, out.data()); }, repeats));
    row("fc2 (nested out) backward" + at, mone::median_ms([&] { mone::nested_out_backward(dy.data(), h.data(), hidden, groups, w_out.data(), D, dx.data(), dw.data(), db.data()); }, repeats));
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mone-bench-ops: error: " << e.what() << "\n";
  return 2;
}
