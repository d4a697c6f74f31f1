// Stopping and resuming: a run stopped by SIGUSR1 and resumed reproduces the
// uninterrupted run bit for bit; --resume auto skips a broken newest
// checkpoint; a process killed while writing a checkpoint leaves the
// previous one to resume from; a different model or architecture is
// refused; a diverging run stops cleanly. Bitwise resume holds for MoNE (also
// in chunks of images) and for Mobile V-MoE.
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <functional>
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

// A run stopped by SIGUSR1 and resumed ends with the bits of the uninterrupted one.
void expect_stopped_and_resumed_equals_uninterrupted(
    const testing::TrainerFixture& fixture,
    const std::function<std::vector<std::string>(const testing::TrainerFixture&, const std::string&)>& run_args) {
  const int64_t steps = 40;
  const std::vector<std::string> extra = {"--steps", std::to_string(steps), "--augment", "true"};
  const testing::ProcessResult straight = run_mone(with(run_args(fixture, "straight"), extra));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;

  const fs::path stopped_run = fixture.root() / "stopped";
  const testing::ProcessResult stopped = run_mone(with(run_args(fixture, "stopped"), extra), [&](pid_t pid) {
    // Signal as soon as a few steps are logged: the run stops mid-way.
    testing::wait_until_logged(stopped_run / "metrics.jsonl", 3, std::chrono::seconds(60));
    kill(pid, SIGUSR1);
  });
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  const int64_t stopped_at = last_logged_step(stopped_run / "metrics.jsonl");
  EXPECT_LT(stopped_at, steps);
  EXPECT_EQ(CheckpointDirectory(stopped_run).list().size(), 1u);

  const testing::ProcessResult resumed = run_mone(with(run_args(fixture, "stopped"), extra));
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

TEST(Resume, StoppedBySignalAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  expect_stopped_and_resumed_equals_uninterrupted(fixture, small_run);
}

TEST(Resume, VmoeStoppedBySignalAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  expect_stopped_and_resumed_equals_uninterrupted(fixture, testing::small_vmoe_run);
}

// Several passes per step (the sandwich rule with in-place distillation) and
// the random router: the passes, their draws and the token permutations are
// pure functions of (seed, step, sample), so a resumed run has the same bits.
TEST(Resume, SandwichWithDistillationStoppedAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  expect_stopped_and_resumed_equals_uninterrupted(fixture, [](const testing::TrainerFixture& f, const std::string& dir) {
    return with(small_run(f, dir), {"--capacity", "sandwich:1", "--distill", "--distill-temperature", "2",
                                    "--distill-label-weight", "0.5", "--init", "fan-in"});
  });
}

TEST(Resume, RandomRouterStoppedAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  expect_stopped_and_resumed_equals_uninterrupted(fixture, [](const testing::TrainerFixture& f, const std::string& dir) {
    return with(small_run(f, dir), {"--router", "random"});
  });
}

// Batch 16 in chunks of 6 images (6 + 6 + 4): the chunked pass resumes bit for bit too.
TEST(Resume, ChunkedPassesStoppedAndResumedEqualsUninterrupted) {
  testing::TrainerFixture fixture;
  expect_stopped_and_resumed_equals_uninterrupted(fixture,
                                                  [](const testing::TrainerFixture& f, const std::string& dir) {
                                                    return with(small_run(f, dir), {"--chunk-images", "6"});
                                                  });
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

// Waits (at most 60 s) until a file named `name` is created in `dir`, then
// sends SIGKILL to `pid` at once. True when the event came in time.
bool kill_when_created(pid_t pid, const fs::path& dir, const std::string& name) {
  const int fd = inotify_init1(IN_NONBLOCK);
  if (fd < 0 || inotify_add_watch(fd, dir.c_str(), IN_CREATE) < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  alignas(inotify_event) char buffer[4096];
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    const ssize_t length = read(fd, buffer, sizeof(buffer));
    if (length <= 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      continue;
    }
    for (ssize_t at = 0; at < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0 && name == event->name) seen = true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  if (seen) kill(pid, SIGKILL);
  close(fd);
  return seen;
}

TEST(Resume, KilledWhileWritingACheckpointResumesFromThePreviousOne) {
  testing::TrainerFixture fixture;
  // A wider model than the other tests' so a checkpoint takes long enough to
  // write (about 12 MB) that SIGKILL lands inside it.
  const std::vector<std::string> extra = {"--steps", "4", "--checkpoint-every", "1", "--dim", "128", "--depth", "4"};
  // The kill races the write: a try counts only if the temporary file is left
  // behind, which proves the process died before the rename.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string name = "run" + std::to_string(attempt);
    const fs::path run = fixture.root() / name;
    fs::create_directories(run / "checkpoints");
    bool seen = false;
    const testing::ProcessResult killed = run_mone(with(small_run(fixture, name), extra), [&](pid_t pid) {
      seen = kill_when_created(pid, run / "checkpoints", ".step-00000002.h5.tmp");
    });
    ASSERT_TRUE(seen) << "the second checkpoint was never started: " << killed.err;
    EXPECT_EQ(killed.exit_code, -SIGKILL);
    if (!fs::exists(run / "checkpoints" / ".step-00000002.h5.tmp")) continue;

    const std::vector<fs::path> saved = CheckpointDirectory(run).list();
    ASSERT_EQ(saved.size(), 1u);
    EXPECT_EQ(read_checkpoint(saved[0]).progress.step, 1);
    const testing::ProcessResult resumed = run_mone(with(small_run(fixture, name), extra));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("resuming at step 1 "), std::string::npos) << resumed.out;
    EXPECT_EQ(read_checkpoint(CheckpointDirectory(run).path_for(4)).progress.step, 4);
    return;
  }
  FAIL() << "in 5 tries SIGKILL never landed while the checkpoint was being written";
}

TEST(Resume, DifferentModelIsRefusedNamingTheFields) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "1"})).exit_code, 0);
  const testing::ProcessResult result = run_mone(with(small_run(fixture, "run"), {"--steps", "2", "--dim", "64"}));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("dim: checkpoint 32, this run 64"), std::string::npos) << result.err;
  const testing::ProcessResult router = run_mone(with(small_run(fixture, "run"), {"--steps", "2", "--router", "random"}));
  EXPECT_EQ(router.exit_code, 2);
  EXPECT_NE(router.err.find("router: checkpoint learned, this run random"), std::string::npos) << router.err;
}

TEST(Resume, OtherArchitectureIsRefused) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "1"})).exit_code, 0);
  const testing::ProcessResult result = run_mone(with(testing::small_vmoe_run(fixture, "run"), {"--steps", "2"}));
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("arch: checkpoint mone, this run vmoe"), std::string::npos) << result.err;
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
