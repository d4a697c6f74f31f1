// `mone` as a user meets it: errors that name the option (exit code 2),
// config-file precedence, the run directory's files, and a checkpoint read
// by h5py.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::run_mone;
using testing::small_run;
using testing::with;

// Sets an environment variable for the processes a test starts; restores
// the old state when it goes out of scope.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedVariable() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;  // unset before
};

void expect_usage_error(const std::vector<std::string>& args, const std::string& named) {
  const testing::ProcessResult result = run_mone(args);
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find(named), std::string::npos) << "expected '" << named << "' in: " << result.err;
  EXPECT_EQ(result.err.find("terminate"), std::string::npos) << result.err;
}

// The spin count libgomp settled on in the last program image of `mone --help`
// (OMP_DISPLAY_ENV=verbose prints it at every start: before and after the restart).
std::string last_spin_count() {
  const testing::ProcessResult result = run_mone({"--help"});
  const std::string text = result.err + result.out, key = "GOMP_SPINCOUNT = '";
  const size_t at = text.rfind(key);
  if (at == std::string::npos) return "no GOMP_SPINCOUNT in: " + text;
  const size_t begin = at + key.size();
  return text.substr(begin, text.find('\'', begin) - begin);
}

TEST(MoneCli, OpenMPThreadsSleepWhileWaitingUnlessTheUserChose) {
  ScopedVariable display("OMP_DISPLAY_ENV", "verbose");
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT"))
    GTEST_SKIP() << "OMP_WAIT_POLICY or GOMP_SPINCOUNT is set in this environment";
  EXPECT_EQ(last_spin_count(), "0");  // passive (libgomp's own default spins 300000 times)
  {
    ScopedVariable policy("OMP_WAIT_POLICY", "active");
    EXPECT_NE(last_spin_count(), "0");
  }
  ScopedVariable spin("GOMP_SPINCOUNT", "1000");
  EXPECT_EQ(last_spin_count(), "1000");
}

TEST(MoneCli, ErrorsNameTheOption) {
  testing::TrainerFixture fixture;
  const std::vector<std::string> base = small_run(fixture, "run");
  expect_usage_error(with(base, {"--bogus", "1"}), "--bogus");
  expect_usage_error(with(base, {"--steps", "abc"}), "--steps");
  expect_usage_error(with(base, {"--capacity", "fixed:2"}), "--capacity");
  expect_usage_error(with(base, {"--capacity", "sometimes"}), "--capacity");
  expect_usage_error(with(base, {"--progress", "fancy"}), "--progress");
  expect_usage_error(with(base, {"--eval-capacities", "0.5,x"}), "--eval-capacities");
  expect_usage_error(with(base, {"--accumulate", "3"}), "--accumulate");
  expect_usage_error(with(base, {"--chunk-images", "-1"}), "--chunk-images: must be 0");
  expect_usage_error(with(base, {"--chunk-images", "4", "--device", "cuda"}), "--chunk-images: is for --device cpu");
  expect_usage_error(with(base, {"--dim", "30"}), "dim");
  expect_usage_error(with(base, {"--device", "gpu"}), "--device: must be cpu or cuda, got 'gpu'");
  expect_usage_error(with(base, {"--precision", "fp16"}), "--precision: must be bf16 or fp32, got 'fp16'");
  expect_usage_error(with(base, {"--device", "cuda", "--allreduce-dtype", "bf16"}), "--allreduce-dtype");
  expect_usage_error(with(base, {"--init", "xavier"}), "--init: 'xavier' is not one of small, fan-in");
  expect_usage_error(with(base, {"--router", "lucky"}), "--router: model config: unknown router 'lucky'");
  expect_usage_error(with(base, {"--capacity", "sandwich:x"}), "--capacity");
  expect_usage_error(with(base, {"--distill", "--distill-temperature", "0"}), "--distill-temperature");
  expect_usage_error(with(base, {"--distill", "--device", "cuda"}), "--distill: runs on --device cpu only");
  expect_usage_error(with(base, {"--capacity", "sandwich", "--device", "cuda"}), "--capacity: sandwich runs on");
  expect_usage_error(with(base, {"--router", "random", "--device", "cuda"}), "--router: random runs on");
  expect_usage_error(with(base, {"--gelu", "relu"}), "--gelu: model config: unknown gelu 'relu'");
  expect_usage_error(with(base, {"--gelu", "erf", "--device", "cuda"}), "--gelu: erf runs on");
  expect_usage_error({"train", "--run-dir", "x"}, "--data");
  expect_usage_error({"frobnicate"}, "unknown command 'frobnicate'");
  expect_usage_error({"eval", "--data", fixture.data().string()}, "--checkpoint");
  expect_usage_error({"eval", "--data", fixture.data().string(), "--checkpoint", "x", "--device", "tpu"}, "--device");
  EXPECT_FALSE(fs::exists(fixture.root() / "run" / "checkpoints"));
}

// --device cuda where it cannot run fails naming the option, before any
// checkpoint is written. A build without the CUDA backend says so; a CUDA build
// is shown no device (CUDA_VISIBLE_DEVICES empty, so also on a GPU machine)
// and says that. Both for train and eval.
TEST(MoneCli, DeviceCudaWithoutCudaNamesTheOption) {
#ifdef MONE_HAVE_CUDA
  const std::string message = "--device cuda: no CUDA device visible";
  const ScopedVariable no_devices("CUDA_VISIBLE_DEVICES", "");
#else
  const std::string message = "--device cuda: this build of mone has no CUDA backend";
#endif
  testing::TrainerFixture fixture;
  expect_usage_error(with(small_run(fixture, "run"), {"--device", "cuda"}), message);
  EXPECT_FALSE(fs::exists(fixture.root() / "run" / "checkpoints"));
  ASSERT_EQ(run_mone(with(small_run(fixture, "cpu"), {"--steps", "1"})).exit_code, 0);
  expect_usage_error({"eval", "--data", fixture.data().string(), "--checkpoint", (fixture.root() / "cpu").string(),
                      "--device", "cuda"},
                     message);
}

// --help, option errors and `mone data` end before MPI starts (each mone
// process would otherwise pay the MPI start-up): with MPI unable to start
// (Open MPI told to use a component that does not exist) they still answer,
// while a command that needs MPI fails.
TEST(MoneCli, HelpOptionErrorsAndDataNeedNoMpi) {
  testing::TrainerFixture fixture;
  const ScopedVariable broken_mpi("OMPI_MCA_pml", "no_such_component");
  const std::vector<std::string> base = small_run(fixture, "run");
  if (run_mone(with(base, {"--steps", "1"})).exit_code == 0)
    GTEST_SKIP() << "this MPI library ignores OMPI_MCA_pml: no way to tell a started MPI apart";
  expect_usage_error(with(base, {"--bogus", "1"}), "--bogus");
  expect_usage_error(with(base, {"--dim", "30"}), "dim");
  expect_usage_error({"eval", "--data", fixture.data().string()}, "--checkpoint");
  expect_usage_error({"frobnicate"}, "unknown command 'frobnicate'");
  for (const std::vector<std::string>& help : {std::vector<std::string>{"--help"}, {"train", "--help"},
                                              {"eval", "--help"}, {"route", "--help"}, {"data", "--help"}}) {
    const testing::ProcessResult result = run_mone(help);
    EXPECT_EQ(result.exit_code, 0) << help.front() << ": " << result.err;
    EXPECT_NE(result.out.find("Usage: mone"), std::string::npos) << result.out;
  }
  const testing::ProcessResult converted =
      run_mone({"data", "--out", (fixture.root() / "converted").string(), "--source", "synthetic", "--height", "8",
                "--width", "8", "--channels", "1", "--count", "20", "--test-count", "5", "--progress", "none"});
  EXPECT_EQ(converted.exit_code, 0) << converted.err;
}

TEST(MoneCli, HelpComesFromTheOptionDefinitions) {
  const testing::ProcessResult train = run_mone({"train", "--help"});
  EXPECT_EQ(train.exit_code, 0);
  for (const char* option :
       {"--capacity", "--resume", "--eval-capacities", "--no-flip", "--config", "--device", "--precision"}) {
    EXPECT_NE(train.out.find(option), std::string::npos) << option;
  }
  const testing::ProcessResult eval = run_mone({"eval", "--help"});
  EXPECT_EQ(eval.exit_code, 0);
  EXPECT_NE(eval.out.find("--checkpoint"), std::string::npos);
}

TEST(MoneCli, DataCommandConvertsLikeTheTool) {
  testing::TrainerFixture fixture;
  const fs::path out = fixture.root() / "converted";
  const testing::ProcessResult converted =
      run_mone({"data", "--out", out.string(), "--source", "synthetic", "--height", "8", "--width", "8",
                "--channels", "1", "--count", "20", "--test-count", "5", "--progress", "none"});
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  EXPECT_NE(converted.out.find("train: 20 samples in 1 shards"), std::string::npos) << converted.out;
  EXPECT_TRUE(fs::exists(out / "manifest.h5"));

  const testing::ProcessResult help = run_mone({"data", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Usage: mone data --out DIR"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--val-count"), std::string::npos);

  const testing::ProcessResult wrong = run_mone({"data", "--out", out.string(), "--source", "mnist"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("mone data: error: --source 'mnist' is not one of"), std::string::npos) << wrong.err;
}

TEST(MoneCli, ConfigFileLosesToTheCommandLine) {
  testing::TrainerFixture fixture;
  const fs::path ini = fixture.root() / "settings.ini";
  std::ofstream(ini) << "steps = 3\nlr = 0.002\nno-flip = true\n";
  const testing::ProcessResult result =
      run_mone(with(small_run(fixture, "run"), {"--config", ini.string(), "--steps", "2"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> config = testing::read_lines(fixture.root() / "run" / "config.ini");
  auto has = [&](const std::string& line) { return std::find(config.begin(), config.end(), line) != config.end(); };
  EXPECT_TRUE(has("steps = 2"));
  EXPECT_TRUE(has("no-flip = true"));
  EXPECT_TRUE(has("dim = 32"));
  EXPECT_TRUE(has("lr = 0.002"));  // from the file: not on the command line

  std::ofstream(ini) << "steps = 3\nwarp-speed = 9\n";
  expect_usage_error(with(small_run(fixture, "run2"), {"--config", ini.string()}), "warp-speed");
}

TEST(MoneCli, RunDirectoryHoldsMetricsEvaluationAndACheckpointReadableByH5py) {
  testing::TrainerFixture fixture;
  const testing::ProcessResult result = run_mone(with(small_run(fixture, "run"), {"--steps", "3"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path run = fixture.root() / "run";
  const std::vector<std::string> metrics = testing::read_lines(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);  // three steps and the final evaluation
  EXPECT_NE(metrics[0].find("\"type\": \"train\", \"step\": 1,"), std::string::npos) << metrics[0];
  for (const char* key : {"epoch", "loss", "lr", "e_c", "grad_norm", "img_per_s", "ms_per_step", "data_wait_ms"}) {
    EXPECT_NE(metrics[0].find("\"" + std::string(key) + "\": "), std::string::npos) << key;
  }
  EXPECT_NE(metrics[3].find("\"type\": \"eval\""), std::string::npos);
  EXPECT_TRUE(fs::exists(run / "eval" / "val-step-00000003.csv"));
  EXPECT_EQ(testing::read_lines(run / "eval" / "val-step-00000003.csv").size(), 3u);  // header, e_c 0.5 and 1

  const fs::path checkpoint = run / "checkpoints" / "step-00000003.h5";
  const Checkpoint loaded = read_checkpoint(checkpoint);
  const std::string script =
      "import h5py, sys\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "print(int(f.attrs['step']))\n"
      "print(' '.join(repr(float(x)) for x in f['params/patch_embed.bias'][...].ravel()))\n"
      "print(' '.join(repr(float(x)) for x in f['optimizer/v/router.weight'][...].ravel()))\n";
  const fs::path script_path = fixture.root() / "read.py";
  std::ofstream(script_path) << script;
  const std::string command = std::string(MONE_PYTHON) + " " + script_path.string() + " " + checkpoint.string();
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  ASSERT_EQ(pclose(pipe), 0) << output;

  std::istringstream lines(output);
  int64_t step = 0;
  lines >> step;
  EXPECT_EQ(step, 3);
  auto expect_values = [&](const float* expected, int64_t count, const char* name) {
    for (int64_t i = 0; i < count; ++i) {
      double value = 0;
      ASSERT_TRUE(lines >> value) << name;
      EXPECT_EQ(static_cast<float>(value), expected[i]) << name << " element " << i;
    }
  };
  const ParameterSet<float> layout(loaded.model);
  const ParamInfo& bias = layout.info("patch_embed.bias");
  const ParamInfo& router = layout.info("router.weight");
  expect_values(loaded.values.data() + bias.offset, bias.numel, "patch_embed.bias");
  expect_values(loaded.second_moment.data() + router.offset, router.numel, "router.weight");
}

// Mean top-1 over the capacities of one eval/val-step-N.csv.
double mean_top1(const fs::path& csv) {
  const std::vector<std::string> lines = testing::read_lines(csv);
  double sum = 0;
  for (size_t i = 1; i < lines.size(); ++i) {  // after the header
    std::stringstream row(lines[i]);
    std::string requested, realised, top1;
    std::getline(row, requested, ',');
    std::getline(row, realised, ',');
    std::getline(row, top1, ',');
    sum += std::stod(top1);
  }
  return sum / static_cast<double>(lines.size() - 1);
}

TEST(MoneCli, KeepsTheBestCheckpointByValidationAccuracy) {
  testing::TrainerFixture fixture;
  const testing::ProcessResult result =
      run_mone(with(small_run(fixture, "run"), {"--steps", "8", "--eval-every", "2", "--checkpoint-every", "2",
                                                "--keep", "10", "--eval-capacities", "0.5,1", "--lr", "0.01"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const fs::path run = fixture.root() / "run";
  int64_t best_step = 0;
  double best = -1;
  for (int64_t step = 2; step <= 8; step += 2) {
    char name[32];
    std::snprintf(name, sizeof(name), "val-step-%08lld.csv", static_cast<long long>(step));
    const double top1 = mean_top1(run / "eval" / name);
    if (top1 > best) best = top1, best_step = step;  // the first of equal scores stays
  }
  const CheckpointDirectory checkpoints(run);
  EXPECT_EQ(checkpoints.list().size(), 4u);  // best.h5 is not one of the step checkpoints
  const Checkpoint kept = read_checkpoint(checkpoints.best_path());
  EXPECT_EQ(kept.progress.step, best_step);
  EXPECT_EQ(kept.progress.best_step, best_step);
  EXPECT_NEAR(kept.progress.best_top1, best, 1e-12);
  EXPECT_EQ(kept.values, read_checkpoint(checkpoints.path_for(best_step)).values);
  // The final checkpoint remembers the best so far, for a resumed run.
  EXPECT_EQ(read_checkpoint(checkpoints.path_for(8)).progress.best_step, best_step);
}

// The value of one parameter (by name) in a checkpoint.
std::vector<float> parameter(const Checkpoint& checkpoint, const std::string& name) {
  const ParameterSet<float> layout(checkpoint.model);
  const ParamInfo& info = layout.info(name);
  const auto begin = checkpoint.values.begin() + info.offset;
  return {begin, begin + info.numel};
}

TEST(MoneCli, RoutingInitialisationOptions) {
  testing::TrainerFixture fixture;
  // A learning rate of 1e-30 leaves the initial values as they were drawn.
  const std::vector<std::string> frozen = {"--steps", "1", "--lr", "1e-30", "--min-lr", "0", "--warmup", "0"};
  ASSERT_EQ(run_mone(with(small_run(fixture, "default"), frozen)).exit_code, 0);
  const testing::ProcessResult changed = run_mone(
      with(small_run(fixture, "changed"), with(frozen, {"--router-init-std", "0.2", "--alpha-init", "0.5"})));
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  const Checkpoint a = read_checkpoint(CheckpointDirectory(fixture.root() / "default").path_for(1));
  const Checkpoint b = read_checkpoint(CheckpointDirectory(fixture.root() / "changed").path_for(1));
  const std::vector<float> router_a = parameter(a, "router.weight"), router_b = parameter(b, "router.weight");
  ASSERT_EQ(router_a.size(), router_b.size());
  for (size_t i = 0; i < router_a.size(); ++i) EXPECT_NEAR(router_b[i], 10.0f * router_a[i], 1e-6f) << i;
  for (float alpha : parameter(a, "blocks.0.alpha")) EXPECT_NEAR(alpha, 0.0f, 1e-20f);
  for (float alpha : parameter(b, "blocks.1.alpha")) EXPECT_NEAR(alpha, 0.5f, 1e-6f);
  expect_usage_error(with(small_run(fixture, "bad"), {"--full-capacity-steps", "-1"}), "--full-capacity-steps");
}

TEST(MoneCli, ProgressIsLinesInALogAndABarWhenAsked) {
  testing::TrainerFixture fixture;
  const std::vector<std::string> extra = {"--steps", "2", "--log-every", "1"};
  const testing::ProcessResult piped = run_mone(with(small_run(fixture, "auto"), extra));
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out.find('\r'), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("step 2/2  loss "), std::string::npos) << piped.out;
  const testing::ProcessResult bar = run_mone(with(small_run(fixture, "bar"), with(extra, {"--progress", "bar"})));
  ASSERT_EQ(bar.exit_code, 0) << bar.err;
  EXPECT_NE(bar.out.find("\r\033[Kstep 2/2  loss "), std::string::npos) << bar.out;
  EXPECT_NE(bar.out.find("ETA "), std::string::npos) << bar.out;
}

}  // namespace
}  // namespace mone
