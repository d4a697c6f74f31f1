// Data-parallel step on the CPU: how much of the gradient allreduce hides
// behind backward, and the throughput per rank. Not a test. Per rank, with
// the median of --steps timed steps:
//   compute   forward + backward alone (no communication)
//   comm      the bucketed allreduce of the whole gradient alone
//   step      forward + backward with the buckets started from the backward
//             hook, then waiting for the last one (what training does)
//   skew      how much later the slowest rank finished backward than the fastest
//             (load imbalance: no allreduce can end before the slowest rank
//             has finished its part)
//   exposed   from the slowest rank's end of backward to this rank's end of
//             the step: the communication that no backward hid
//   overlap   share of comm hidden behind backward: 1 - exposed / comm
// skew and exposed are measured inside the overlapped step itself (the ranks
// share the machine's monotonic clock), so they do not mix timings of
// different steps, which on a shared machine vary by more than the allreduce.
// Run with 1 rank for the weak-scaling baseline (comm is then zero).
//
//   mpirun -np 2 build/bench/mone-bench-ddp --preset tiny --batch 64 --threads 1
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/options.h"
#include "comm/gradient_buckets.h"
#include "comm/host_values.h"
#include "comm/mpi_communicator.h"
#include "model/model.h"
#include "model/random.h"

namespace po = boost::program_options;

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}
double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}
}  // namespace

int main(int argc, char** argv) try {
  mone::restart_with_passive_openmp_wait(argv);  // as `mone` runs (model/model.h)
  mone::World world(&argc, &argv);
  std::string preset;
  int64_t batch = 0, steps = 0, warmup = 0;
  int threads = 0;
  double capacity = 0, bucket_mb = 0, first_bucket_mb = 0;
  po::options_description options("mone-bench-ddp: overlap of the gradient allreduce with backward (under mpirun)");
  options.add_options()("help", "show this help")(
      "preset", po::value(&preset)->default_value("tiny"), "model preset (tiny, s16, b16)")(
      "batch", po::value(&batch)->default_value(64), "images per rank and step")(
      "capacity", po::value(&capacity)->default_value(1.0), "effective capacity e_c")(
      "threads", po::value(&threads)->default_value(1), "threads per rank")(
      "bucket-mb", po::value(&bucket_mb)->default_value(25), "bucket size, MiB")(
      "first-bucket-mb", po::value(&first_bucket_mb)->default_value(1), "first bucket size, MiB")(
      "steps", po::value(&steps)->default_value(10), "timed steps (median reported)")(
      "warmup", po::value(&warmup)->default_value(2), "untimed steps first");
  if (!mone::parse_options(argc, argv, options)) return 0;
  if (batch <= 0 || steps <= 0 || warmup < 0 || threads <= 0)
    throw po::error("--batch, --steps and --threads must be positive");
  mone::set_thread_count(threads);
  const mone::ModelConfig config = mone::preset_config(preset);
  std::vector<float> images(batch * config.image_height * config.image_width * config.channels);
  std::vector<int32_t> labels(batch);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(mone::random_normal(7, 0, i));
  for (int64_t b = 0; b < batch; ++b) labels[b] = static_cast<int32_t>(mone::random_bits(7, 1, b) % config.classes);

  mone::MpiCommunicator comm(world);
  mone::Model<float> model(config, 1);
  mone::ParameterSet<float>& params = model.params();
  mone::BucketOptions bucket_options;
  bucket_options.bucket_bytes = static_cast<int64_t>(bucket_mb * 1048576.0);
  bucket_options.first_bucket_bytes = static_cast<int64_t>(first_bucket_mb * 1048576.0);
  mone::GradientBuckets buckets(comm, params.grads(), params.numel(), bucket_options);

  std::vector<double> compute, communicate, step, exposed, skew;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const bool timed = s >= warmup;
    // Compute alone.
    model.set_gradient_ready(nullptr);
    params.zero_grads();
    comm.barrier("bench");
    Clock::time_point start = Clock::now();
    model.forward_backward(images.data(), labels.data(), batch, plan_routing(model.config(), capacity));
    if (timed) compute.push_back(ms_since(start));
    // Communication alone: every bucket ready at once.
    comm.barrier("bench");
    start = Clock::now();
    buckets.begin("bench comm");
    buckets.mark_ready(0, params.numel());
    buckets.finish();
    if (timed) communicate.push_back(ms_since(start));
    // Both, overlapped as in training.
    model.set_gradient_ready([&](int64_t begin, int64_t end) { buckets.mark_ready(begin, end); });
    params.zero_grads();
    comm.barrier("bench");
    start = Clock::now();
    buckets.begin("bench step");
    model.forward_backward(images.data(), labels.data(), batch, plan_routing(model.config(), capacity));
    const Clock::time_point backward_done = Clock::now();
    buckets.finish();
    const Clock::time_point done = Clock::now();
    if (timed) step.push_back(ms_since(start));
    const int64_t mine = backward_done.time_since_epoch().count();
    std::vector<int64_t> ends(static_cast<size_t>(comm.size()));
    mone::allgather_bytes(comm, &mine, ends.data(), sizeof(mine), "bench backward ends");
    const auto [first_end, last_end] = std::minmax_element(ends.begin(), ends.end());
    if (timed) {
      const Clock::time_point slowest{Clock::duration(*last_end)};
      exposed.push_back(std::max(0.0, std::chrono::duration<double, std::milli>(done - slowest).count()));
      skew.push_back(std::chrono::duration<double, std::milli>(Clock::duration(*last_end - *first_end)).count());
    }
  }
  // Each rank's medians; the table shows the slowest rank (the step is done when all are).
  std::vector<float> mine = {static_cast<float>(median(compute)), static_cast<float>(median(communicate)),
                             static_cast<float>(median(step)), static_cast<float>(median(exposed)),
                             static_cast<float>(median(skew))};
  std::vector<float> all(mine.size() * static_cast<size_t>(comm.size()));
  comm.allgather(mine.data(), all.data(), mine.size(), mone::ElementType::float32, "bench timings");
  std::vector<double> worst(mine.size(), 0.0);
  for (int r = 0; r < comm.size(); ++r)
    for (size_t k = 0; k < mine.size(); ++k)
      worst[k] = std::max(worst[k], static_cast<double>(all[r * mine.size() + k]));
  if (world.is_root()) {
    const double t_compute = worst[0], t_comm = worst[1], t_step = worst[2], t_exposed = worst[3], t_skew = worst[4];
    // With one rank nothing is sent: no overlap to speak of.
    char overlap[16] = "-";
    if (comm.size() > 1)
      std::snprintf(overlap, sizeof(overlap), "%.0f%%",
                    100.0 * std::clamp(1.0 - t_exposed / t_comm, 0.0, 1.0));
    std::printf("%-6s %5s %6s %7s %9s %7s %11s %9s %9s %8s %11s %8s %12s\n", "preset", "ranks", "batch", "threads",
                "grad MiB", "buckets", "compute ms", "comm ms", "step ms", "skew ms", "exposed ms", "overlap",
                "img/s/rank");
    std::printf("%-6s %5d %6ld %7d %9.1f %7zu %11.1f %9.1f %9.1f %8.1f %11.2f %8s %12.1f\n", preset.c_str(),
                comm.size(), static_cast<long>(batch), threads, params.numel() * 4.0 / 1048576.0,
                buckets.buckets().size(), t_compute, t_comm, t_step, t_skew, t_exposed, overlap,
                1000.0 * static_cast<double>(batch) / t_step);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mone-bench-ddp: error: " << e.what() << "\n";
  return 2;
}
