// Checkpoint files: a bitwise round trip, detection of an edited header
// attribute and of a corrupted tensor, pruning to the newest K, and --resume auto's choice of the newest valid one.
#include <hdf5.h>

#include <fstream>
#include <functional>
#include <sstream>

#include <gtest/gtest.h>

#include "model/model.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/checkpoint.h"

namespace mone {
namespace {

namespace fs = std::filesystem;

ModelConfig small_model() {
  ModelConfig config = preset_config("tiny");
  config.dim = 16;
  config.depth = 1;
  config.heads = 2;
  return config;
}

TrainingProgress progress_at(int64_t step) {
  TrainingProgress progress;
  progress.step = step;
  return progress;
}

ModelConfig small_vmoe_model() {
  ModelConfig config = small_model();
  config.arch = Arch::vmoe;
  config.depth = 2;
  config.moe_blocks = 1;
  config.experts = 3;
  config.top_k = 2;
  return config;
}

struct SavedState {
  explicit SavedState(const ModelConfig& config = small_model()) : model(config, 5) {
    ParameterSet<float>& params = model.params();
    for (int64_t i = 0; i < params.numel(); ++i) params.grads()[i] = 0.001f * static_cast<float>(i % 17 - 8);
    optimizer.step(params.values(), params.grads(), 0.01);
  }
  Model<float> model;
  AdamW optimizer{model.params().infos(), model.params().numel(), AdamWSettings{}};
};

TEST(Checkpoint, RoundTripIsBitwise) {
  testing::TrainerFixture dir;
  SavedState state;
  TrainingProgress progress;
  progress.step = 12;
  progress.epoch = 1;
  progress.consumed_samples = 384;
  progress.seed = 99;
  progress.run_id = "0123456789abcdef";
  progress.dataset = "train 256; crc32 0x01234567";
  const fs::path path = dir.root() / "one.h5";
  write_checkpoint(path, state.model.config(), state.model.params(), state.optimizer, progress, "steps = 12\n");
  EXPECT_FALSE(fs::exists(dir.root() / ".one.h5.tmp"));

  const Checkpoint loaded = read_checkpoint(path);
  EXPECT_TRUE(model_differences(loaded.model, state.model.config()).empty());
  EXPECT_EQ(loaded.progress.step, 12);
  EXPECT_EQ(loaded.progress.consumed_samples, 384);
  EXPECT_EQ(loaded.progress.seed, 99u);
  EXPECT_EQ(loaded.progress.run_id, "0123456789abcdef");
  EXPECT_EQ(loaded.progress.dataset, "train 256; crc32 0x01234567");
  EXPECT_EQ(loaded.optimizer_step, 1);
  EXPECT_EQ(loaded.config, "steps = 12\n");
  const ParameterSet<float>& params = state.model.params();
  EXPECT_EQ(loaded.values, std::vector<float>(params.values(), params.values() + params.numel()));
  EXPECT_EQ(loaded.first_moment, state.optimizer.first_moment());
  EXPECT_EQ(loaded.second_moment, state.optimizer.second_moment());
}

// Every header attribute resume reads is covered by the checksum (version
// 2): an edit of any one, as `h5py` or `h5edit` would make it, is refused.
TEST(Checkpoint, EditedHeaderAttributeFailsTheChecksum) {
  testing::TrainerFixture dir;
  SavedState state;
  TrainingProgress progress = progress_at(12);
  progress.consumed_samples = 1280;
  progress.run_id = "0123456789abcdef";
  const auto write_int = [](hid_t attribute, int64_t value) {
    H5Awrite(attribute, H5T_NATIVE_INT64, &value);
  };
  const auto write_double = [](hid_t attribute, double value) { H5Awrite(attribute, H5T_NATIVE_DOUBLE, &value); };
  const auto write_text = [](hid_t attribute, const char* value) {
    const hid_t type = H5Aget_type(attribute);
    H5Awrite(attribute, type, &value);
    H5Tclose(type);
  };
  const std::vector<std::pair<std::string, std::function<void(hid_t)>>> edits = {
      {"consumed_samples", [&](hid_t a) { write_int(a, 1000000000); }},
      {"step", [&](hid_t a) { write_int(a, 13); }},
      {"epoch", [&](hid_t a) { write_int(a, 7); }},
      {"seed", [&](hid_t a) { write_int(a, 5); }},
      {"optimizer_step", [&](hid_t a) { write_int(a, 2); }},
      {"best_step", [&](hid_t a) { write_int(a, 12); }},
      {"best_top1", [&](hid_t a) { write_double(a, 0.99); }},
      {"config", [&](hid_t a) { write_text(a, "steps = 99\n"); }},
      {"run_id", [&](hid_t a) { write_text(a, "fedcba9876543210"); }},
      {"dataset", [&](hid_t a) { write_text(a, "other"); }},
  };
  for (const auto& [name, edit] : edits) {
    SCOPED_TRACE(name);
    const fs::path path = dir.root() / ("edited-" + name + ".h5");
    write_checkpoint(path, state.model.config(), state.model.params(), state.optimizer, progress, "steps = 12\n");
    ASSERT_NO_THROW(read_checkpoint(path));
    {
      const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      const hid_t attribute = H5Aopen(file, name.c_str(), H5P_DEFAULT);
      ASSERT_GE(attribute, 0);
      edit(attribute);
      H5Aclose(attribute);
      H5Fclose(file);
    }
    try {
      read_checkpoint(path);
      ADD_FAILURE() << "an edited '" << name << "' was accepted";
    } catch (const CheckpointError& error) {
      EXPECT_NE(std::string(error.what()).find("checksum does not match its header"), std::string::npos)
          << error.what();
    }
  }
}

TEST(Checkpoint, ChangedTensorFailsTheChecksum) {
  testing::TrainerFixture dir;
  SavedState state;
  const fs::path path = dir.root() / "one.h5";
  write_checkpoint(path, state.model.config(), state.model.params(), state.optimizer, TrainingProgress(), "");
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t dataset = H5Dopen2(file, "/params/router.bias", H5P_DEFAULT);
    const std::vector<float> changed(4, 0.5f);
    H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, changed.data());
    H5Dclose(dataset);
    H5Fclose(file);
  }
  try {
    read_checkpoint(path);
    FAIL() << "a changed checkpoint was accepted";
  } catch (const CheckpointError& error) {
    EXPECT_NE(std::string(error.what()).find("checksum"), std::string::npos) << error.what();
  }
}

TEST(Checkpoint, DirectoryKeepsTheNewestAndSkipsBrokenOnes) {
  testing::TrainerFixture dir;
  SavedState state;
  const CheckpointDirectory checkpoints(dir.root());
  for (int64_t step : {2, 4, 6, 8}) {
    checkpoints.save(state.model.config(), state.model.params(), state.optimizer, progress_at(step), "", 3);
  }
  const std::vector<fs::path> files = checkpoints.list();
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files.front().filename(), "step-00000004.h5");
  EXPECT_EQ(files.back().filename(), "step-00000008.h5");

  fs::resize_file(files.back(), fs::file_size(files.back()) / 2);  // a write cut short
  std::ostringstream warnings;
  const std::optional<Checkpoint> newest = checkpoints.newest_valid(warnings);
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->progress.step, 6);
  EXPECT_NE(warnings.str().find("warning: skipping checkpoint"), std::string::npos);
  EXPECT_NE(warnings.str().find("step-00000008.h5"), std::string::npos);
}

TEST(Checkpoint, ModelDifferencesNameTheFields) {
  ModelConfig other = small_model();
  other.dim = 32;
  other.depth = 3;
  const std::vector<std::string> differences = model_differences(small_model(), other);
  ASSERT_EQ(differences.size(), 2u);
  EXPECT_EQ(differences[0], "dim: checkpoint 16, this run 32");
  EXPECT_EQ(differences[1], "depth: checkpoint 1, this run 3");
}

TEST(Checkpoint, VmoeRoundTripKeepsTheArchAndItsFields) {
  testing::TrainerFixture dir;
  SavedState state(small_vmoe_model());
  const fs::path path = dir.root() / "vmoe.h5";
  write_checkpoint(path, state.model.config(), state.model.params(), state.optimizer, TrainingProgress(), "");
  const Checkpoint loaded = read_checkpoint(path);
  EXPECT_EQ(loaded.model.arch, Arch::vmoe);
  EXPECT_EQ(loaded.model.moe_blocks, 1);
  EXPECT_EQ(loaded.model.top_k, 2);
  EXPECT_TRUE(model_differences(loaded.model, state.model.config()).empty());
  const ParameterSet<float>& params = state.model.params();
  EXPECT_EQ(loaded.values, std::vector<float>(params.values(), params.values() + params.numel()));
}

TEST(Checkpoint, OtherArchIsOneDifference) {
  const std::vector<std::string> differences = model_differences(small_model(), small_vmoe_model());
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_EQ(differences[0].rfind("arch: checkpoint mone, this run vmoe", 0), 0u) << differences[0];
}

}  // namespace
}  // namespace mone
