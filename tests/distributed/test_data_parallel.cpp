// Data-parallel training end to end: `mpirun -np R mone train` against one
// process, on the trainer tests' tiny model and synthetic dataset (D 32,
// depth 2, global batch 16, one thread per rank).
//
// What may differ between R ranks with B/R samples each and one rank with B:
// only the order of floating-point sums (weight gradients sum over B rows in
// one GEMM vs R partial GEMMs plus the allreduce; the loss mean likewise).
// Those differences are ~1e-7 relative and AdamW carries them forward; after
// 20 steps we measured at most 1.3e-7 relative in the losses and 1.8e-6 in
// the parameters (O(0.02-1)), so the losses must agree to kLossTolerance
// (relative) and the parameters to kParameterTolerance (absolute).
// Everything else (the global batch, augmentation, e_c per step) is equal by
// construction, and a wrong sample order or gradient scale would show as
// differences of 1e-2 and more.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <cmath>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::last_logged_step;
using testing::metrics_field;
using testing::run_mone;
using testing::run_mone_ranks;
using testing::trajectory;
using testing::with;

constexpr double kLossTolerance = 1e-5;
// Parameters after 20 AdamW steps: summation-order differences in the
// gradients (one GEMM against R partial GEMMs and the allreduce) are divided
// by sqrt(v) in every update, so a parameter whose gradient is near zero moves
// by a part of the learning rate (2e-3) either way. Largest difference seen:
// 6.3e-5 (four ranks against one, fused attention), with the losses 1.6e-7
// apart (relative).
constexpr double kParameterTolerance = 1e-4;
constexpr int64_t kSteps = 20;

// step -> loss of every train record.
std::map<int64_t, double> losses(const fs::path& run) {
  std::map<int64_t, double> result;
  for (const std::string& line : testing::read_lines(run / "metrics.jsonl")) {
    if (metrics_field(line, "type") != "\"train\"") continue;
    result[std::stoll(metrics_field(line, "step"))] = std::stod(metrics_field(line, "loss"));
  }
  return result;
}

// Largest |a - b| over the parameters of two checkpoints of the same model
// (printed, like the loss difference).
double parameter_difference(const fs::path& a, const fs::path& b) {
  const Checkpoint first = read_checkpoint(a), second = read_checkpoint(b);
  EXPECT_EQ(first.values.size(), second.values.size());
  double largest = 0;
  for (size_t i = 0; i < first.values.size() && i < second.values.size(); ++i)
    largest = std::max(largest, std::fabs(static_cast<double>(first.values[i]) - second.values[i]));
  std::cout << "largest parameter difference from one rank: " << largest << "\n";
  return largest;
}

void expect_losses_match(const std::map<int64_t, double>& expected, const std::map<int64_t, double>& actual,
                         int64_t from_step) {
  double largest = 0;  // relative, printed so the margin to the tolerance is on record
  for (const auto& [step, loss] : actual) {
    ASSERT_TRUE(expected.count(step)) << "step " << step;
    EXPECT_NEAR(loss, expected.at(step), kLossTolerance * std::fabs(expected.at(step))) << "step " << step;
    largest = std::max(largest, std::fabs(loss - expected.at(step)) / std::fabs(expected.at(step)));
  }
  std::cout << "largest relative loss difference from one rank: " << largest << "\n";
  EXPECT_EQ(actual.begin()->first, from_step);
  EXPECT_EQ(actual.rbegin()->first, expected.rbegin()->first);
}

// Never kill(-1, ...): that would signal every process we may signal.
void signal_rank(pid_t mpirun, int rank, int signal) {
  const pid_t pid = testing::rank_pid(mpirun, rank);
  ASSERT_GT(pid, 0) << "no rank " << rank << " among mpirun " << mpirun << "'s children";
  kill(pid, signal);
}

// One fixture for the whole suite: the single-process reference run is shared.
class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture_ = new testing::TrainerFixture;
    const testing::ProcessResult reference = run_mone(args("one-rank"));
    ASSERT_EQ(reference.exit_code, 0) << reference.out << reference.err;
  }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  static std::vector<std::string> args(const std::string& run_dir) {
    return with(testing::small_run(*fixture_, run_dir), {"--steps", std::to_string(kSteps), "--comm-timeout", "60"});
  }
  static fs::path run(const std::string& name) { return fixture_->root() / name; }
  static fs::path final_checkpoint(const std::string& name) {
    return CheckpointDirectory(run(name)).path_for(kSteps);
  }
  static testing::TrainerFixture* fixture_;
};
testing::TrainerFixture* DataParallel::fixture_ = nullptr;

TEST_F(DataParallel, TwoRanksMatchOneRankAndRepeatBitwise) {
  const testing::ProcessResult first = run_mone_ranks(2, args("two-ranks"));
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  expect_losses_match(losses(run("one-rank")), losses(run("two-ranks")), 1);
  EXPECT_LT(parameter_difference(final_checkpoint("one-rank"), final_checkpoint("two-ranks")), kParameterTolerance);

  // Same seed, configuration and world: the same bits.
  const testing::ProcessResult second = run_mone_ranks(2, args("two-ranks-again"));
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(trajectory(run("two-ranks-again")), trajectory(run("two-ranks")));
  EXPECT_EQ(read_checkpoint(final_checkpoint("two-ranks-again")).values,
            read_checkpoint(final_checkpoint("two-ranks")).values);
}

// Mobile V-MoE (top-2, super-class loss): the per-image routing, expert
// GEMMs and router gradient averaged over 2 ranks as over one, within the
// same tolerances.
TEST_F(DataParallel, VmoeTwoRanksMatchOneRank) {
  const auto vmoe_args = [](const std::string& name) {
    return with(testing::small_vmoe_run(*fixture_, name), {"--steps", std::to_string(kSteps), "--comm-timeout", "60"});
  };
  const testing::ProcessResult one = run_mone(vmoe_args("vmoe-one-rank"));
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  const testing::ProcessResult two = run_mone_ranks(2, vmoe_args("vmoe-two-ranks"));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  expect_losses_match(losses(run("vmoe-one-rank")), losses(run("vmoe-two-ranks")), 1);
  EXPECT_LT(parameter_difference(final_checkpoint("vmoe-one-rank"), final_checkpoint("vmoe-two-ranks")),
            kParameterTolerance);
}

// Several passes per step on two ranks: the sandwich rule with in-place
// distillation (each rank's teacher is its own e_c = 1 pass over its half of
// the batch, and the summed gradients are averaged once), and the random
// router (permutations keyed by each image's sample index, not its rank).
TEST_F(DataParallel, SandwichDistillationAndRandomRouterTwoRanksMatchOneRank) {
  const std::vector<std::vector<std::string>> recipes = {
      {"--capacity", "sandwich:1", "--distill", "--distill-temperature", "2", "--distill-label-weight", "0.5",
       "--init", "fan-in"},
      {"--router", "random"}};
  for (size_t r = 0; r < recipes.size(); ++r) {
    const std::string one_rank = "recipe" + std::to_string(r) + "-one-rank";
    const std::string two_ranks = "recipe" + std::to_string(r) + "-two-ranks";
    const testing::ProcessResult one = run_mone(with(args(one_rank), recipes[r]));
    ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
    const testing::ProcessResult two = run_mone_ranks(2, with(args(two_ranks), recipes[r]));
    ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
    expect_losses_match(losses(run(one_rank)), losses(run(two_ranks)), 1);
    EXPECT_LT(parameter_difference(final_checkpoint(one_rank), final_checkpoint(two_ranks)), kParameterTolerance)
        << recipes[r][1];
  }
}

// Four ranks: equivalence, identical parameters on every rank at every step
// (--check-params-every 1 fails the run otherwise), and a checkpoint at step
// 10 that two ranks resume from, continuing the same global sample sequence.
TEST_F(DataParallel, FourRanksMatchOneRankAndResumeOnTwo) {
  const testing::ProcessResult four =
      run_mone_ranks(4, with(args("four-ranks"), {"--check-params-every", "1", "--checkpoint-every", "10"}));
  ASSERT_EQ(four.exit_code, 0) << four.out << four.err;
  EXPECT_NE(four.out.find("step 20: parameters identical on all 4 ranks"), std::string::npos) << four.out;
  expect_losses_match(losses(run("one-rank")), losses(run("four-ranks")), 1);
  EXPECT_LT(parameter_difference(final_checkpoint("one-rank"), final_checkpoint("four-ranks")), kParameterTolerance);
  // Evaluation sharded over 4 ranks reports the whole validation split (64
  // samples), each of the 2 capacities, like one process.
  int evaluations = 0;
  for (const std::string& line : testing::read_lines(run("four-ranks") / "metrics.jsonl")) {
    if (metrics_field(line, "type") != "\"eval\"") continue;
    ++evaluations;
    size_t count = 0;
    for (size_t at = line.find("\"samples\": 64"); at != std::string::npos; at = line.find("\"samples\": 64", at + 1))
      ++count;
    EXPECT_EQ(count, 2u) << line;
  }
  EXPECT_EQ(evaluations, 1);  // at the end

  const fs::path saved = CheckpointDirectory(run("four-ranks")).path_for(10);
  ASSERT_TRUE(fs::exists(saved));
  EXPECT_EQ(read_checkpoint(saved).progress.world_size, 4);
  const testing::ProcessResult two =
      run_mone_ranks(2, with(args("resumed-on-two"), {"--resume", saved.string(), "--check-params-every", "10"}));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_NE(two.out.find("saved by 4 ranks, this run has 2"), std::string::npos) << two.out;
  const Checkpoint end = read_checkpoint(final_checkpoint("resumed-on-two"));
  EXPECT_EQ(end.progress.consumed_samples, kSteps * 16);
  EXPECT_EQ(end.progress.world_size, 2);
  expect_losses_match(losses(run("one-rank")), losses(run("resumed-on-two")), 11);
  EXPECT_LT(parameter_difference(final_checkpoint("one-rank"), final_checkpoint("resumed-on-two")),
            kParameterTolerance);
}

// --accumulate 2 on 2 ranks (4 samples per rank and micro-step): gradients
// synchronised on the last micro-step only, scaled once, must still give the
// one-process trajectory within the same tolerances.
TEST_F(DataParallel, AccumulationOnTwoRanksMatchesOneRank) {
  const testing::ProcessResult run_result = run_mone_ranks(2, with(args("accumulate"), {"--accumulate", "2"}));
  ASSERT_EQ(run_result.exit_code, 0) << run_result.out << run_result.err;
  expect_losses_match(losses(run("one-rank")), losses(run("accumulate")), 1);
  EXPECT_LT(parameter_difference(final_checkpoint("one-rank"), final_checkpoint("accumulate")), kParameterTolerance);
}

// --allreduce-dtype bf16 rounds every gradient to 8 significant bits before
// averaging: training must still follow the fp32 trajectory closely (1 %),
// and every rank must still hold the same parameters.
TEST_F(DataParallel, Bfloat16AllreduceStaysClose) {
  const testing::ProcessResult run_result = run_mone_ranks(
      2, with(args("bf16"), {"--allreduce-dtype", "bf16", "--check-params-every", "20"}));
  ASSERT_EQ(run_result.exit_code, 0) << run_result.out << run_result.err;
  EXPECT_NE(run_result.out.find("step 20: parameters identical on all 2 ranks"), std::string::npos);
  const std::map<int64_t, double> expected = losses(run("one-rank"));
  for (const auto& [step, loss] : losses(run("bf16"))) EXPECT_NEAR(loss, expected.at(step), 0.01 * expected.at(step));
}

// SIGUSR1 to rank 1 alone: both ranks stop after the same step, rank 0 writes
// the checkpoint, the job exits 75, and resuming gives the uninterrupted
// two-rank run's bits.
TEST_F(DataParallel, StopSignalToOneRankStopsAll) {
  const testing::ProcessResult reference = run_mone_ranks(2, with(args("straight"), {"--steps", "40"}));
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const std::vector<std::string> stopped_args = with(args("stopped"), {"--steps", "40"});
  const fs::path metrics = run("stopped") / "metrics.jsonl";
  const testing::ProcessResult stopped = run_mone_ranks(2, stopped_args, [&](pid_t mpirun) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (last_logged_step(metrics) < 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    signal_rank(mpirun, 1, SIGUSR1);
  });
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  const int64_t stopped_at = last_logged_step(metrics);
  EXPECT_LT(stopped_at, 40);
  EXPECT_NE(stopped.out.find("stopped after step " + std::to_string(stopped_at) +
                             " because another rank received a stop signal"),
            std::string::npos)
      << stopped.out;
  EXPECT_TRUE(fs::exists(CheckpointDirectory(run("stopped")).path_for(stopped_at)));

  const testing::ProcessResult resumed = run_mone_ranks(2, stopped_args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(trajectory(run("stopped")), trajectory(run("straight")));
}

// SIGKILL to rank 1 mid-run: the job must end non-zero well within the
// watchdog bound plus start-up, with a message saying why. Either mechanism
// may fire first: mpirun noticing the dead rank and killing the others, or
// rank 0's watchdog (--comm-timeout 10) aborting the job; the test prints
// which one did.
TEST_F(DataParallel, KilledRankEndsTheJob) {
  const fs::path metrics = run("killed") / "metrics.jsonl";
  std::chrono::steady_clock::time_point killed_at;
  const testing::ProcessResult killed = run_mone_ranks(
      2, with(args("killed"), {"--steps", "100000", "--comm-timeout", "10"}), [&](pid_t mpirun) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (last_logged_step(metrics) < 3 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        signal_rank(mpirun, 1, SIGKILL);
        killed_at = std::chrono::steady_clock::now();
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_NE(killed.exit_code, 0);
  EXPECT_NE(killed.exit_code, 75);
  EXPECT_LT(seconds, 25.0);
  const std::string output = killed.out + killed.err;
  const bool watchdog = output.find("timed out after 10 s") != std::string::npos;
  const bool launcher = output.find("signal 9") != std::string::npos || output.find("Killed") != std::string::npos;
  EXPECT_TRUE(watchdog || launcher) << output;
  std::cout << "job ended " << seconds << " s after SIGKILL, exit " << killed.exit_code << ", by "
            << (watchdog ? "the watchdog" : "mpirun (it noticed the dead rank and killed the others)") << "\n";
}

// SIGSTOP to rank 1 mid-run: a hung rank, which mpirun does not notice. Rank
// 0's watchdog (--comm-timeout 8) must abort the job with a message naming
// the collective and the step.
TEST_F(DataParallel, HungRankTriggersTheWatchdog) {
  const fs::path metrics = run("hung") / "metrics.jsonl";
  std::chrono::steady_clock::time_point stopped_at;
  const testing::ProcessResult hung = run_mone_ranks(
      2, with(args("hung"), {"--steps", "100000", "--comm-timeout", "8"}), [&](pid_t mpirun) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (last_logged_step(metrics) < 3 && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        signal_rank(mpirun, 1, SIGSTOP);
        stopped_at = std::chrono::steady_clock::now();
      });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  EXPECT_NE(hung.exit_code, 0);
  EXPECT_NE(hung.exit_code, 75);
  EXPECT_GE(seconds, 7.0);
  EXPECT_LT(seconds, 30.0);
  const std::string output = hung.out + hung.err;
  EXPECT_NE(output.find("timed out after 8 s"), std::string::npos) << output;
  EXPECT_NE(output.find("(step "), std::string::npos) << output;
  const size_t message = output.rfind("mone: rank", output.find("timed out"));
  std::cout << "job ended " << seconds << " s after SIGSTOP, exit " << hung.exit_code << ": "
            << output.substr(message, output.find('\n', message) - message) << "\n";
}

}  // namespace
}  // namespace mone
