// `mone train --device cuda` and `mone eval --device cuda` end to end, on the
// trainer tests' small model and dataset. Without a visible device every
// test skips with the reason (MoneCli.DeviceCudaWithoutCudaNamesTheOption
// checks the error such a machine gives).
//
// Tolerance against the CPU trainer (fp32 on the device): the first step's
// loss within 1e-4 relative (one forward on the same parameters and batch:
// the model test holds 1e-5), every later step's within 2e-2 (twenty AdamW
// steps amplify the fp32 rounding differences of the GEMMs and reductions;
// AdamW's normalised update moves near-zero gradients by up to lr). These
// bounds are estimates made without a device; the first run on a GPU
// confirms or adjusts them.
#include <signal.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/common/gpu_skip.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::run_mone;
using testing::small_run;
using testing::with;

// step -> loss of every train record of <run>/metrics.jsonl.
std::map<int64_t, double> losses(const fs::path& run) {
  std::map<int64_t, double> out;
  for (const std::string& line : testing::read_lines(run / "metrics.jsonl")) {
    if (testing::metrics_field(line, "type") != "\"train\"") continue;
    out[std::stoll(testing::metrics_field(line, "step"))] = std::stod(testing::metrics_field(line, "loss"));
  }
  return out;
}

// Each step of `got` within `later` (relative) of `want`, the first within `first`.
void expect_close_losses(const std::map<int64_t, double>& got, const std::map<int64_t, double>& want, double first,
                         double later) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) {
    ASSERT_TRUE(got.count(step)) << "step " << step;
    const double tolerance = step == want.begin()->first ? first : later;
    EXPECT_LE(std::fabs(got.at(step) - loss), tolerance * std::fabs(loss))
        << "step " << step << ": " << got.at(step) << " vs " << loss;
  }
}

std::vector<std::string> device_run(const testing::TrainerFixture& fixture, const std::string& run_dir,
                                    const std::string& precision) {
  return with(small_run(fixture, run_dir), {"--device", "cuda", "--precision", precision});
}

TEST(DeviceTrain, Fp32LossesFollowTheCpuTrainer) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  const std::vector<std::string> steps = {"--steps", "20"};
  const testing::ProcessResult cpu = run_mone(with(small_run(fixture, "cpu"), steps));
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const testing::ProcessResult device = run_mone(with(device_run(fixture, "device", "fp32"), steps));
  ASSERT_EQ(device.exit_code, 0) << device.err;
  EXPECT_NE(device.out.find("device: cuda device"), std::string::npos) << device.out;
  expect_close_losses(losses(fixture.root() / "device"), losses(fixture.root() / "cpu"), 1e-4, 2e-2);
}

// Mobile V-MoE on the device (fp32), with top-2 routing and the router's
// super-class loss, against the CPU trainer at the same tolerances; and two
// device runs in bf16 give the same bits.
TEST(DeviceTrain, VmoeFollowsTheCpuTrainer) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  const fs::path groups = fixture.root() / "superclasses.txt";
  std::ofstream file(groups);
  file << "# class superclass\n";
  for (int c = 0; c < 10; ++c) file << c << " " << c % 3 << "\n";
  file.close();
  const std::vector<std::string> vmoe = {"--arch", "vmoe", "--capacity", "fixed:1", "--eval-capacities", "1",
                                         "--top-k", "2", "--superclasses", groups.string(), "--steps", "20"};
  const testing::ProcessResult cpu = run_mone(with(small_run(fixture, "cpu"), vmoe));
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  const testing::ProcessResult device = run_mone(with(device_run(fixture, "device", "fp32"), vmoe));
  ASSERT_EQ(device.exit_code, 0) << device.err;
  expect_close_losses(losses(fixture.root() / "device"), losses(fixture.root() / "cpu"), 1e-4, 2e-2);
  ASSERT_EQ(run_mone(with(device_run(fixture, "bf16-a", "bf16"), vmoe)).exit_code, 0);
  ASSERT_EQ(run_mone(with(device_run(fixture, "bf16-b", "bf16"), vmoe)).exit_code, 0);
  EXPECT_EQ(testing::trajectory(fixture.root() / "bf16-a"), testing::trajectory(fixture.root() / "bf16-b"));
}

TEST(DeviceTrain, TwoRunsGiveTheSameBits) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  for (const std::string precision : {"bf16", "fp32"}) {
    const std::vector<std::string> options = {"--steps", "15", "--accumulate", "2"};
    ASSERT_EQ(run_mone(with(device_run(fixture, precision + "-a", precision), options)).exit_code, 0);
    ASSERT_EQ(run_mone(with(device_run(fixture, precision + "-b", precision), options)).exit_code, 0);
    const auto a = testing::trajectory(fixture.root() / (precision + "-a"));
    EXPECT_EQ(a.size(), 15u);
    EXPECT_EQ(a, testing::trajectory(fixture.root() / (precision + "-b"))) << precision;
  }
}

// CUDA graphs (on by default on one rank without --accumulate) replay the
// bits of the op-by-op step: the same losses with --cuda-graphs false, both
// at a fixed e_c (every step after the second replays) and with random ones
// (a graph per value drawn, evaluations in between).
TEST(DeviceTrain, GraphReplayGivesTheBitsOfTheOpByOpStep) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  for (const std::string capacity : {"fixed:0.5", "random"}) {
    const std::vector<std::string> options = {"--steps", "15", "--capacity", capacity, "--eval-every", "5"};
    const std::string graphs = "graphs-" + capacity.substr(0, 5), ops = "ops-" + capacity.substr(0, 5);
    ASSERT_EQ(run_mone(with(device_run(fixture, graphs, "bf16"), options)).exit_code, 0);
    ASSERT_EQ(run_mone(with(device_run(fixture, ops, "bf16"), with(options, {"--cuda-graphs", "false"}))).exit_code,
              0);
    const auto replayed = testing::trajectory(fixture.root() / graphs);
    EXPECT_EQ(replayed.size(), 15u);
    EXPECT_EQ(replayed, testing::trajectory(fixture.root() / ops)) << capacity;
  }
}

TEST(DeviceTrain, StoppedBySignalAndResumedEqualsUninterrupted) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  const int64_t steps = 300;  // device steps are quick: room to stop mid-way
  const std::vector<std::string> extra = {"--steps", std::to_string(steps)};
  ASSERT_EQ(run_mone(with(device_run(fixture, "straight", "bf16"), extra)).exit_code, 0);

  const fs::path stopped_run = fixture.root() / "stopped";
  const testing::ProcessResult stopped =
      run_mone(with(device_run(fixture, "stopped", "bf16"), extra), [&](pid_t pid) {
        testing::wait_until_logged(stopped_run / "metrics.jsonl", 3, std::chrono::seconds(60));
        kill(pid, SIGUSR1);
      });
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  const int64_t stopped_at = testing::last_logged_step(stopped_run / "metrics.jsonl");
  EXPECT_LT(stopped_at, steps);

  const testing::ProcessResult resumed = run_mone(with(device_run(fixture, "stopped", "bf16"), extra));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming at step " + std::to_string(stopped_at)), std::string::npos) << resumed.out;
  EXPECT_EQ(testing::trajectory(stopped_run), testing::trajectory(fixture.root() / "straight"));
  const Checkpoint a = read_checkpoint(CheckpointDirectory(fixture.root() / "straight").path_for(steps));
  const Checkpoint b = read_checkpoint(CheckpointDirectory(stopped_run).path_for(steps));
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.first_moment, b.first_moment);
  EXPECT_EQ(a.second_moment, b.second_moment);
  EXPECT_EQ(a.optimizer_step, b.optimizer_step);
}

// Two ranks on the device (each its own GPU with NCCL, or both on one GPU
// averaging through the host) follow the one-rank device run: the same
// global batches, the average taken in another order (fp32; tolerances as
// above), and identical parameters on both ranks.
TEST(DeviceTrain, TwoRanksFollowOneRank) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  const std::vector<std::string> options = {"--steps", "10", "--check-params-every", "5"};
  ASSERT_EQ(run_mone(with(device_run(fixture, "one", "fp32"), options)).exit_code, 0);
  const testing::ProcessResult two = testing::run_mone_ranks(2, with(device_run(fixture, "two", "fp32"), options));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_NE(two.out.find("gradients averaged "), std::string::npos) << two.out;
  EXPECT_NE(two.out.find("parameters identical on all 2 ranks"), std::string::npos) << two.out;
  expect_close_losses(losses(fixture.root() / "two"), losses(fixture.root() / "one"), 1e-4, 2e-2);
}

// Checkpoints hold the CPU layout whatever wrote them: a device run resumes
// on the CPU and a CPU run on the device, each continuing as the other
// device would (fp32; tolerances as above).
TEST(DeviceTrain, CheckpointsMoveBetweenCpuAndDevice) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  const std::vector<std::string> first = {"--steps", "10"}, second = {"--steps", "20"};
  for (const std::string from : {"cpu", "cuda"}) {
    const std::string to = from == "cpu" ? "cuda" : "cpu";
    const fs::path straight = fixture.root() / (from + "-straight"), moved = fixture.root() / (from + "-moved");
    auto run = [&](const fs::path& dir, const std::string& device, const std::vector<std::string>& steps) {
      return run_mone(with(small_run(fixture, dir.filename().string()),
                           {"--device", device, "--precision", "fp32", steps[0], steps[1]}));
    };
    ASSERT_EQ(run(straight, from, first).exit_code, 0);
    fs::copy(straight, moved, fs::copy_options::recursive);
    ASSERT_EQ(run(straight, from, second).exit_code, 0);
    const testing::ProcessResult resumed = run(moved, to, second);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("resuming at step 10"), std::string::npos) << resumed.out;
    std::map<int64_t, double> want = losses(straight), got = losses(moved);
    for (int64_t step = 1; step <= 10; ++step) want.erase(step), got.erase(step);
    SCOPED_TRACE(from + " checkpoint resumed on " + to);
    expect_close_losses(got, want, 1e-4, 2e-2);
  }
}

// `mone eval --device cuda` (fp32) reports what the CPU's evaluation does.
TEST(DeviceTrain, EvalOnTheDeviceMatchesTheCpu) {
  MONE_SKIP_WITHOUT_GPUS(1);
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "10"})).exit_code, 0);
  std::map<std::string, std::vector<std::string>> reports;
  for (const std::string device : {"cpu", "cuda"}) {
    const fs::path out = fixture.root() / ("eval-" + device);
    const testing::ProcessResult result =
        run_mone({"eval", "--data", fixture.data().string(), "--checkpoint", (fixture.root() / "run").string(),
                  "--capacities", "0.5,1", "--device", device, "--precision", "fp32", "--out", out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    for (const fs::directory_entry& entry : fs::directory_iterator(out / "eval"))
      if (entry.path().extension() == ".csv") reports[device] = testing::read_lines(entry.path());
  }
  ASSERT_EQ(reports["cpu"].size(), 3u);  // header and two capacities
  ASSERT_EQ(reports["cuda"].size(), 3u);
  EXPECT_EQ(reports["cpu"][0], reports["cuda"][0]);
  for (size_t row = 1; row < 3; ++row) {
    // requested,realised,top1,loss,gflops,samples
    std::vector<double> cpu, cuda;
    std::stringstream a(reports["cpu"][row]), b(reports["cuda"][row]);
    for (std::string x, y; std::getline(a, x, ',') && std::getline(b, y, ',');) {
      cpu.push_back(std::stod(x));
      cuda.push_back(std::stod(y));
    }
    ASSERT_EQ(cpu.size(), 6u);
    for (const size_t exact : {0, 1, 4, 5}) EXPECT_EQ(cpu[exact], cuda[exact]) << reports["cuda"][row];
    EXPECT_NEAR(cuda[2], cpu[2], 2.0 / cpu[5]) << "top-1: at most a sample or two may flip";
    EXPECT_NEAR(cuda[3], cpu[3], 1e-4 * cpu[3]) << "loss";
  }
}

}  // namespace
}  // namespace mone
