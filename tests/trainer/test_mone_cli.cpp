// `mone` as a user meets it: errors that name the option (exit code 2),
// config-file precedence, the run directory's files, and a checkpoint read
// by h5py.
#include <cstdio>
#include <cstdlib>
#include <fstream>
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

void expect_usage_error(const std::vector<std::string>& args, const std::string& named) {
  const testing::ProcessResult result = run_mone(args);
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find(named), std::string::npos) << "expected '" << named << "' in: " << result.err;
  EXPECT_EQ(result.err.find("terminate"), std::string::npos) << result.err;
}

TEST(MoneCli, ErrorsNameTheOption) {
  testing::TrainerFixture fixture;
  const std::vector<std::string> base = small_run(fixture, "run");
  expect_usage_error(with(base, {"--bogus", "1"}), "--bogus");
  expect_usage_error(with(base, {"--steps", "abc"}), "--steps");
  expect_usage_error(with(base, {"--capacity", "fixed:2"}), "--capacity");
  expect_usage_error(with(base, {"--capacity", "sometimes"}), "--capacity");
  expect_usage_error(with(base, {"--eval-capacities", "0.5,x"}), "--eval-capacities");
  expect_usage_error(with(base, {"--accumulate", "3"}), "--accumulate");
  expect_usage_error(with(base, {"--dim", "30"}), "dim");
  expect_usage_error({"train", "--run-dir", "x"}, "--data");
  expect_usage_error({"frobnicate"}, "unknown command 'frobnicate'");
  expect_usage_error({"eval", "--data", fixture.data().string()}, "--checkpoint");
  EXPECT_FALSE(fs::exists(fixture.root() / "run" / "checkpoints"));
}

TEST(MoneCli, HelpComesFromTheOptionDefinitions) {
  const testing::ProcessResult train = run_mone({"train", "--help"});
  EXPECT_EQ(train.exit_code, 0);
  for (const char* option : {"--capacity", "--resume", "--eval-capacities", "--no-flip", "--config"}) {
    EXPECT_NE(train.out.find(option), std::string::npos) << option;
  }
  const testing::ProcessResult eval = run_mone({"eval", "--help"});
  EXPECT_EQ(eval.exit_code, 0);
  EXPECT_NE(eval.out.find("--checkpoint"), std::string::npos);
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
  EXPECT_TRUE(fs::exists(run / "eval" / "step-00000003.csv"));
  EXPECT_EQ(testing::read_lines(run / "eval" / "step-00000003.csv").size(), 3u);  // header, e_c 0.5 and 1

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

}  // namespace
}  // namespace mone
