// What `mone train` does when things go wrong (docs/trainer.md, "Failure
// modes"): every case ends with a clear error and exit code, and with the
// last good state kept and verified by loading it. Each test was seen to
// fail on the build before these guards (MONE_TEST_TOOL=<older mone> runs
// the same tests against another build).
#include <hdf5.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "data/convert.h"
#include "data/sources.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::run_mone;
using testing::run_mone_ranks;
using testing::small_run;
using testing::with;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The temporary files a checkpoint write leaves when it is cut short.
std::vector<fs::path> temporary_files(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ignored;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ignored)) {
    if (entry.path().extension() == ".tmp") found.push_back(entry.path());
  }
  return found;
}

// A tmpfs of `bytes` mounted at `dir` (root only: the test skips otherwise).
class SmallFileSystem {
 public:
  SmallFileSystem(const fs::path& dir, int64_t bytes) : dir_(dir) {
    fs::create_directories(dir);
    const std::string options = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
    if (!mounted_) reason_ = std::string("cannot mount a tmpfs (") + std::strerror(errno) + "; needs root)";
  }
  ~SmallFileSystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& reason() const { return reason_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string reason_;
};

// A synthetic dataset like the fixture's (28x28x1, 10 classes) with
// `train` training and `val` validation samples.
fs::path synthetic_data(const fs::path& out, int64_t train, int64_t val, uint64_t seed) {
  SyntheticOptions synthetic;
  synthetic.train_count = train + val;
  synthetic.test_count = 16;
  synthetic.seed = seed;
  ConvertOptions convert_options;
  convert_options.out = out;
  convert_options.shard_size = 2048;
  convert_options.validation_count = val;
  convert(make_synthetic(synthetic), convert_options);
  return out;
}

#define SKIP_WITHOUT(file_system) \
  if (!(file_system).mounted()) GTEST_SKIP() << (file_system).reason()

TEST(FailureModes, MissingEvaluationSplitIsRefusedBeforeTheFirstStep) {
  testing::TrainerFixture fixture;
  const ProcessResult run = run_mone(with(small_run(fixture, "run"), {"--steps", "20", "--eval-split", "holdout"}));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(contains(run.err, "--eval-split")) << run.err;
  EXPECT_TRUE(contains(run.err, "no split 'holdout'")) << run.err;
  EXPECT_FALSE(contains(run.out, "step 1/")) << "steps ran before the refusal:\n" << run.out;
}

TEST(FailureModes, RunDirectoryWithoutRoomForACheckpointIsRefusedAtTheStart) {
  testing::TrainerFixture fixture;
  SmallFileSystem disk(fixture.root() / "small", 128 * 1024);  // the D32 model's checkpoints are ~390 kB
  SKIP_WITHOUT(disk);
  const ProcessResult run =
      run_mone(with(small_run(fixture, "small/run"), {"--steps", "20", "--checkpoint-every", "5"}));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(contains(run.err, "--run-dir")) << run.err;
  EXPECT_TRUE(contains(run.err, "free; one checkpoint of this model needs")) << run.err;
  EXPECT_FALSE(contains(run.out, "step 1/")) << run.out;
}

// The disk fills between two checkpoints: one line with the file and the
// bytes, exit 74, no temporary file, the previous checkpoint loads.
void expect_clean_disk_full(int ranks) {
  testing::TrainerFixture fixture;
  SmallFileSystem disk(fixture.root() / "small", 600 * 1024);  // room for one checkpoint, not two
  SKIP_WITHOUT(disk);
  const std::vector<std::string> args =
      with(small_run(fixture, "small/run"), {"--steps", "40", "--checkpoint-every", "5", "--keep", "5"});
  const ProcessResult run = ranks == 1 ? run_mone(args) : run_mone_ranks(ranks, args);
  EXPECT_EQ(run.exit_code, 74) << run.out << run.err;
  EXPECT_TRUE(contains(run.err, "mone train: error: cannot write '" +
                                    (fixture.root() / "small/run/checkpoints/step-00000010.h5").string() +
                                    "': reserving space: No space left on device (it needs "))
      << run.err;
  EXPECT_TRUE(contains(run.err, "step-00000005.h5, is intact (loaded and verified)")) << run.err;
  EXPECT_FALSE(contains(run.err, "HDF5")) << run.err;
  EXPECT_FALSE(contains(run.err, "Segmentation fault")) << run.err;
  EXPECT_TRUE(temporary_files(fixture.root() / "small").empty());
  const Checkpoint kept = read_checkpoint(CheckpointDirectory(fixture.root() / "small/run").path_for(5));
  EXPECT_EQ(kept.progress.step, 5);
}

TEST(FailureModes, FullDiskDuringACheckpointEndsCleanlyOnOneRank) { expect_clean_disk_full(1); }
TEST(FailureModes, FullDiskDuringACheckpointEndsCleanlyOnTwoRanks) { expect_clean_disk_full(2); }

// A second training on a run directory in use is refused with the first's
// host and pid, on one rank and when rank 0 of a 2-rank job holds it; once
// the first is SIGKILLed the directory is free again (no stale lock).
void expect_second_start_refused(int first_ranks) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  const std::vector<std::string> long_run = with(small_run(fixture, "run"), {"--steps", "100000", "--log-every", "1"});
  ProcessResult second;
  const auto while_first_runs = [&](pid_t first) {
    testing::wait_until_logged(run_dir / "metrics.jsonl", 2, std::chrono::seconds(60));
    second = run_mone(with(small_run(fixture, "run"), {"--steps", "3"}));
    const pid_t holder = first_ranks == 1 ? first : testing::rank_pid(first, 0);
    EXPECT_TRUE(contains(second.err, "pid " + std::to_string(holder))) << second.err;
    kill(first_ranks == 1 ? first : holder, SIGKILL);
  };
  if (first_ranks == 1) {
    run_mone(long_run, while_first_runs);
  } else {
    run_mone_ranks(first_ranks, long_run, while_first_runs);
  }
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_TRUE(contains(second.err, "is in use by another training")) << second.err;
  const ProcessResult after = run_mone(with(small_run(fixture, "run"), {"--steps", "3", "--resume", "none"}));
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

// A run killed between checkpoints (SIGKILL; a watchdog's MPI_Abort is no
// gentler): its output, a pipe as under srun and so block-buffered, must name
// the newest checkpoint on disk. That line used to wait in stdout's buffer for
// the next step's line, and a rank that died in that step took it along: a
// log naming step 5 while the resume took step 10.
TEST(FailureModes, KilledRunsOutputNamesItsNewestCheckpoint) {
  testing::TrainerFixture fixture;
  const CheckpointDirectory checkpoints(fixture.root() / "run");
  // Steps of some milliseconds, so the kill lands in the step after the checkpoint.
  const ProcessResult killed = run_mone(
      with(small_run(fixture, "run"), {"--steps", "100000", "--batch", "64", "--checkpoint-every", "5"}),
      [&](pid_t pid) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!fs::exists(checkpoints.path_for(5)) && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        kill(pid, SIGKILL);
      });
  const std::vector<fs::path> saved = checkpoints.list();
  ASSERT_FALSE(saved.empty()) << killed.out << killed.err;
  EXPECT_TRUE(contains(killed.out, "saved checkpoint " + saved.back().string() + "\n"))
      << "no line names the newest checkpoint, " << saved.back() << ":\n"
      << killed.out;
}

TEST(FailureModes, SecondTrainingOnTheSameRunDirectoryIsRefused) { expect_second_start_refused(1); }
TEST(FailureModes, SecondTrainingIsRefusedWhileRankZeroOfAJobHoldsTheDirectory) { expect_second_start_refused(2); }

TEST(FailureModes, ResumeNoneRefusesAnEarlierRunUnlessOverwriteMovesItAside) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "8", "--checkpoint-every", "4"})).exit_code, 0);
  const std::string metrics = slurp(run_dir / "metrics.jsonl");
  const std::string id = slurp(run_dir / "run-id");

  const std::vector<std::string> fresh =
      with(small_run(fixture, "run"), {"--steps", "4", "--resume", "none", "--seed", "9"});
  const ProcessResult refused = run_mone(fresh);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_TRUE(contains(refused.err, "--resume none: '" + run_dir.string() + "' holds an earlier run's checkpoints"))
      << refused.err;
  EXPECT_EQ(slurp(run_dir / "metrics.jsonl"), metrics) << "the refused start touched the earlier run";

  const ProcessResult overwritten = run_mone(with(fresh, {"--overwrite"}));
  ASSERT_EQ(overwritten.exit_code, 0) << overwritten.err;
  std::vector<fs::path> aside;
  for (const auto& entry : fs::directory_iterator(fixture.root())) {
    if (contains(entry.path().filename().string(), "run.replaced-")) aside.push_back(entry.path());
  }
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(slurp(aside[0] / "metrics.jsonl"), metrics);
  EXPECT_EQ(read_checkpoint(CheckpointDirectory(aside[0]).path_for(8)).progress.step, 8);
  // The new run's files only: its own id, its own checkpoint, none of the old.
  EXPECT_NE(slurp(run_dir / "run-id"), id);
  const std::vector<fs::path> now = CheckpointDirectory(run_dir).list();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(read_checkpoint(now[0]).progress.seed, 9u);
  // And the next --resume auto continues the new run, not the old one.
  const ProcessResult next = run_mone(with(small_run(fixture, "run"), {"--steps", "6", "--seed", "9"}));
  EXPECT_EQ(next.exit_code, 0) << next.err;
  EXPECT_TRUE(contains(next.out, "resuming at step 4")) << next.out;
}

TEST(FailureModes, CheckpointOfAnotherRunIsNotResumed) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "ours"), {"--steps", "4"})).exit_code, 0);
  ASSERT_EQ(run_mone(with(small_run(fixture, "theirs"), {"--steps", "6"})).exit_code, 0);
  // Someone copies the other run's newer checkpoint into ours.
  fs::copy_file(CheckpointDirectory(fixture.root() / "theirs").path_for(6),
                CheckpointDirectory(fixture.root() / "ours").path_for(6));
  const ProcessResult resumed = run_mone(with(small_run(fixture, "ours"), {"--steps", "10"}));
  EXPECT_EQ(resumed.exit_code, 2) << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "belongs to run")) << resumed.err;
  EXPECT_EQ(read_checkpoint(CheckpointDirectory(fixture.root() / "ours").path_for(4)).progress.step, 4);
}

// consumed_samples 1280 -> 1e9 by an attribute edit: refused as corrupt, and
// the run falls back to the previous checkpoint.
TEST(FailureModes, EditedCheckpointHeaderIsRefused) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "8", "--checkpoint-every", "4"})).exit_code, 0);
  const fs::path newest = CheckpointDirectory(run_dir).path_for(8);
  {
    const hid_t file = H5Fopen(newest.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t attribute = H5Aopen(file, "consumed_samples", H5P_DEFAULT);
    const int64_t edited = 1000000000;
    H5Awrite(attribute, H5T_NATIVE_INT64, &edited);
    H5Aclose(attribute);
    H5Fclose(file);
  }
  const ProcessResult resumed = run_mone(with(small_run(fixture, "run"), {"--steps", "10"}));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(contains(resumed.err, "step-00000008.h5' is corrupt")) << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming at step 4 (64 samples consumed)")) << resumed.out;
}

TEST(FailureModes, OtherDatasetIsRefusedUnlessAllowed) {
  testing::TrainerFixture fixture;
  // The fixture's shape, classes and sizes, other images.
  const fs::path other_data = synthetic_data(fixture.root() / "other-data", 192, 64, 11);

  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "4"})).exit_code, 0);
  const std::vector<std::string> other =
      with(small_run(fixture, "run"), {"--steps", "6", "--data", other_data.string()});
  const ProcessResult refused = run_mone(other);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_TRUE(contains(refused.err, "is not the dataset the checkpoint was trained on")) << refused.err;
  const ProcessResult allowed = run_mone(with(other, {"--allow-other-data"}));
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_TRUE(contains(allowed.out, "resuming at step 4")) << allowed.out;
}

// After a fall back past a broken newest checkpoint, best.h5 (a better score
// of the same run) is not replaced by a worse one.
TEST(FailureModes, BestCheckpointSurvivesAFallBackToAnOlderCheckpoint) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  const std::vector<std::string> args =
      with(small_run(fixture, "run"), {"--steps", "10", "--checkpoint-every", "5", "--eval-every", "5"});
  ASSERT_EQ(run_mone(args).exit_code, 0);
  const CheckpointDirectory checkpoints(run_dir);
  // Make best.h5 the run's best by far (rewritten whole, so it verifies).
  Checkpoint best = read_checkpoint(checkpoints.best_path());
  best.progress.best_top1 = 0.99;
  {
    ParameterSet<float> params(best.model);
    std::copy(best.values.begin(), best.values.end(), params.values());
    AdamW optimizer(params.infos(), params.numel(), AdamWSettings{});
    optimizer.restore(best.optimizer_step, best.first_moment, best.second_moment);
    write_checkpoint(checkpoints.best_path(), best.model, params, optimizer, best.progress, best.config);
  }
  const std::string kept = slurp(checkpoints.best_path());
  fs::resize_file(checkpoints.path_for(10), 1000);  // the newest is broken: resume falls back to step 5
  const ProcessResult resumed = run_mone(with(args, {"--steps", "15"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming at step 5")) << resumed.out;
  EXPECT_FALSE(contains(resumed.out, "best so far")) << resumed.out;
  EXPECT_EQ(slurp(checkpoints.best_path()), kept);
}

// The validation shard is broken: its evaluation fails, after the training
// state is saved.
TEST(FailureModes, FailedEvaluationSavesTheTrainingStateFirst) {
  testing::TrainerFixture fixture;
  fs::resize_file(fixture.data() / "val-00000.h5", 2000);
  const fs::path run_dir = fixture.root() / "run";
  const ProcessResult run = run_mone(with(small_run(fixture, "run"), {"--steps", "4"}));
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_TRUE(contains(run.err, "the evaluation after step 4 failed; saving the training state")) << run.err;
  EXPECT_TRUE(contains(run.err, "val-00000.h5")) << run.err;
  EXPECT_EQ(read_checkpoint(CheckpointDirectory(run_dir).path_for(4)).progress.step, 4);
}

TEST(FailureModes, EvalCommandNeverOverwritesTheTrainingsReport) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "4"})).exit_code, 0);
  const fs::path report = run_dir / "eval" / "val-step-00000004.csv";
  const std::string training_report = slurp(report);
  const ProcessResult eval = run_mone({"eval", "--data", fixture.data().string(), "--checkpoint", run_dir.string(),
                                       "--split", "val", "--capacities", "0.3", "--threads", "1"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_EQ(slurp(report), training_report);
  EXPECT_TRUE(fs::exists(run_dir / "eval" / "val-step-00000004.2.csv"));
  EXPECT_TRUE(contains(eval.out, "val-step-00000004.2.csv")) << eval.out;
}

// A dataset whose validation split takes a while to evaluate (a few seconds
// at D 64), so a signal can arrive in the middle of it.
fs::path long_evaluation_data(const testing::TrainerFixture& fixture) {
  return synthetic_data(fixture.root() / "long-eval", 256, 6000, 3);
}

TEST(FailureModes, StopSignalDuringEvaluationStopsItAndTheResumedRunEvaluates) {
  testing::TrainerFixture fixture;
  const fs::path data = long_evaluation_data(fixture);
  const fs::path run_dir = fixture.root() / "run";
  const std::vector<std::string> args =
      with(small_run(fixture, "run"), {"--data", data.string(), "--steps", "6", "--eval-every", "3", "--dim", "64",
                                       "--eval-batch", "16", "--eval-capacities", "0.3,0.5,0.7,1"});
  using Clock = std::chrono::steady_clock;
  Clock::time_point signalled;
  const ProcessResult stopped = run_mone(args, [&](pid_t pid) {
    testing::wait_until_logged(run_dir / "metrics.jsonl", 3, std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // inside the evaluation of step 3
    signalled = Clock::now();
    kill(pid, SIGTERM);
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - signalled).count();
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  EXPECT_LT(seconds, 2.0) << "the stop waited for the evaluation";
  EXPECT_TRUE(contains(stopped.out, "stopped by signal 15 after step 3")) << stopped.out;
  EXPECT_FALSE(fs::exists(run_dir / "eval" / "val-step-00000003.csv"));
  EXPECT_EQ(read_checkpoint(CheckpointDirectory(run_dir).path_for(3)).progress.step, 3);

  const ProcessResult resumed = run_mone(args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "the evaluation of step 3 was interrupted; evaluating now")) << resumed.out;
  EXPECT_TRUE(fs::exists(run_dir / "eval" / "val-step-00000003.csv"));
  EXPECT_TRUE(fs::exists(run_dir / "eval" / "val-step-00000006.csv"));
}

// Waits (up to 10 s) until process `pid` has a handler for `signal`: the
// SigCgt mask of /proc/PID/status has its bit set.
void wait_until_catching(pid_t pid, int signal) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("SigCgt:", 0) != 0) continue;
      const unsigned long long caught = std::stoull(line.substr(7), nullptr, 16);
      if (caught & (1ull << (signal - 1))) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

TEST(FailureModes, StopSignalDuringTheStartEndsWithACheckpointAndExit75) {
  testing::TrainerFixture fixture;
  const ProcessResult stopped = run_mone(with(small_run(fixture, "run"), {"--steps", "1000"}), [](pid_t pid) {
    // As soon as the handler is in place (on a busy machine that can take
    // longer than a fixed sleep), i.e. in MPI's start, before the model exists.
    wait_until_catching(pid, SIGTERM);
    kill(pid, SIGTERM);
  });
  EXPECT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  EXPECT_TRUE(contains(stopped.out, "stopped by signal 15 after step 1")) << stopped.out;
}

// Open MPI's mpirun answers SIGTERM by killing the ranks and exiting 1;
// scripts/mpirun.sh turns it into the stop the ranks checkpoint on, and
// hands on their 75.
TEST(FailureModes, SigtermToTheMpirunScriptEndsInTheRequeueCode) {
  testing::TrainerFixture fixture;
  const fs::path run_dir = fixture.root() / "run";
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  std::vector<std::string> argv = {MONE_SOURCE_DIR "/scripts/mpirun.sh", "-np", "2", "--oversubscribe",
                                   testing::mone_tool()};
  const std::vector<std::string> args = with(small_run(fixture, "run"), {"--steps", "100000"});
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult stopped = testing::run_command(argv, [&](pid_t pid) {
    testing::wait_until_logged(run_dir / "metrics.jsonl", 3, std::chrono::seconds(60));
    kill(pid, SIGTERM);
  });
  EXPECT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  EXPECT_TRUE(contains(stopped.out, "stopped by signal")) << stopped.out;
  EXPECT_EQ(CheckpointDirectory(run_dir).list().size(), 1u);
}

}  // namespace
}  // namespace mone
