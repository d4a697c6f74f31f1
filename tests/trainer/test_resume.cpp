// Stopping and resuming: a run stopped by SIGUSR1 and resumed reproduces the
// uninterrupted run bit for bit; --resume auto skips a broken newest
// checkpoint; a different model is refused; a diverging run stops cleanly.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::run_mone;
using testing::small_run;
using testing::with;

using testing::last_logged_step;
using testing::trajectory;

TEST(Resume, StoppedBySignalAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  const int64_t steps = 40;
  const std::vector<std::string> extra = {"--steps", std::to_string(steps), "--augment", "true"};
  const testing::ProcessResult straight = run_mone(with(small_run(fixture, "straight"), extra));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;

  const fs::path stopped_run = fixture.root() / "stopped";
  const testing::ProcessResult stopped = run_mone(with(small_run(fixture, "stopped"), extra), [&](pid_t pid) {
    // Signal as soon as a few steps are logged: the run stops mid-way.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (last_logged_step(stopped_run / "metrics.jsonl") < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kill(pid, SIGUSR1);
  });
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  const int64_t stopped_at = last_logged_step(stopped_run / "metrics.jsonl");
  EXPECT_LT(stopped_at, steps);
  EXPECT_EQ(CheckpointDirectory(stopped_run).list().size(), 1u);

  const testing::ProcessResult resumed = run_mone(with(small_run(fixture, "stopped"), extra));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming at step " + std::to_string(stopped_at)), std::string::npos) << resumed.out;

  const std::map<int64_t, std::string> expected = trajectory(fixture.root() / "straight");
  ASSERT_EQ(expected.size(), static_cast<size_t>(steps));
  EXPECT_EQ(trajectory(stopped_run), expected);

  const Checkpoint a = read_checkpoint(CheckpointDirectory(fixture.root() / "straight").path_for(steps));
  const Checkpoint b = read_checkpoint(CheckpointDirectory(stopped_run).path_for(steps));
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.first_moment, b.first_moment);
  EXPECT_EQ(a.second_moment, b.second_moment);
  EXPECT_EQ(a.optimizer_step, b.optimizer_step);
  EXPECT_EQ(a.progress.consumed_samples, b.progress.consumed_samples);
}

TEST(Resume, AutoSkipsABrokenNewestCheckpoint) {
  testing::TrainerFixture fixture;
  const fs::path run = fixture.root() / "run";
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "4", "--checkpoint-every", "2"})).exit_code, 0);
  const fs::path newest = CheckpointDirectory(run).path_for(4);
  fs::resize_file(newest, fs::file_size(newest) / 2);

  const testing::ProcessResult result = run_mone(with(small_run(fixture, "run"), {"--steps", "6"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("warning: skipping checkpoint"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("step-00000004.h5"), std::string::npos) << result.err;
  EXPECT_NE(result.out.find("resuming at step 2"), std::string::npos) << result.out;
  EXPECT_EQ(trajectory(run).rbegin()->first, 6);
}

TEST(Resume, DifferentModelIsRefusedNamingTheFields) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "1"})).exit_code, 0);
  const testing::ProcessResult result = run_mone(with(small_run(fixture, "run"), {"--steps", "2", "--dim", "64"}));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("dim: checkpoint 32, this run 64"), std::string::npos) << result.err;
}

TEST(Resume, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  testing::TrainerFixture fixture;
  const fs::path run = fixture.root() / "run";
  const testing::ProcessResult result = run_mone(with(
      small_run(fixture, "run"), {"--steps", "20", "--lr", "1e30", "--warmup", "0", "--checkpoint-every", "1"}));
  EXPECT_EQ(result.exit_code, 3) << result.err;
  EXPECT_NE(result.err.find("step "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(" is nan") + result.err.find(" is inf"), 2 * std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("terminate"), std::string::npos) << result.err;
  const std::vector<fs::path> saved = CheckpointDirectory(run).list();
  ASSERT_FALSE(saved.empty());
  const Checkpoint newest = read_checkpoint(saved.back());  // intact
  EXPECT_NE(result.err.find("step " + std::to_string(newest.progress.step + 1) + ": "), std::string::npos)
      << result.err;
}

}  // namespace
}  // namespace mone
