// Allreduce bandwidth of the MPI communicator on gradient-sized float32
// buffers, nccl-tests style: algbw = bytes / time, busbw = algbw * 2(n-1)/n
// (what each rank's link carries in a ring allreduce, comparable across rank
// counts and with the hardware). Not a test.
//
//   mpirun -np 2 build/bench/mone-bench-allreduce --mib 1,4,25,88,344
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/options.h"
#include "comm/mpi_communicator.h"

namespace po = boost::program_options;

int main(int argc, char** argv) try {
  mone::World world(&argc, &argv);
  std::string sizes_text;
  int iterations = 0, warmup = 0;
  po::options_description options("mone-bench-allreduce: MPI allreduce algbw/busbw (run under mpirun)");
  options.add_options()("help", "show this help")(
      "mib", po::value(&sizes_text)->default_value("1,4,25,88,344"),
      "buffer sizes in MiB (25: a default bucket; 88 and 344: s16's and b16's gradients)")(
      "iterations", po::value(&iterations)->default_value(5), "timed allreduces per size (median reported)")(
      "warmup", po::value(&warmup)->default_value(2), "untimed allreduces first");
  if (!mone::parse_options(argc, argv, options)) return 0;
  if (iterations <= 0 || warmup < 0) throw po::error("--iterations must be positive and --warmup >= 0");
  const auto sizes = mone::parse_list<double>(sizes_text, "mib");
  mone::MpiCommunicator comm(world);
  const double n = comm.size();
  if (world.is_root())
    std::printf("%d ranks\n%10s %12s %10s %12s %12s\n", comm.size(), "MiB", "elements", "ms", "algbw GB/s",
                "busbw GB/s");
  for (const double mib : sizes) {
    const size_t count = static_cast<size_t>(mib * 1048576.0 / sizeof(float));
    std::vector<float> data(count, 1.0f);
    std::vector<double> ms;
    for (int i = 0; i < warmup + iterations; ++i) {
      comm.barrier("bench");
      const auto start = std::chrono::steady_clock::now();
      comm.allreduce(data.data(), count, mone::ElementType::float32, mone::ReduceOp::average, "bench");
      const auto stop = std::chrono::steady_clock::now();
      if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    }
    // The slowest rank's median: the collective is done when all are.
    std::sort(ms.begin(), ms.end());
    double median = ms[ms.size() / 2];
    std::vector<float> all(static_cast<size_t>(comm.size()));
    float mine = static_cast<float>(median);
    comm.allgather(&mine, all.data(), 1, mone::ElementType::float32, "bench timings");
    median = *std::max_element(all.begin(), all.end());
    const double bytes = static_cast<double>(count * sizeof(float));
    const double algbw = bytes / (median / 1000.0) / 1e9;
    if (world.is_root())
      std::printf("%10.1f %12zu %10.2f %12.2f %12.2f\n", mib, count, median, algbw, algbw * 2.0 * (n - 1) / n);
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mone-bench-allreduce: error: " << e.what() << "\n";
  return 2;
}
