// Model configuration: validation errors name the offending field, presets,
// field access by name, and the capacity check at the model's entry point.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/config.h"
#include "model/model.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

// validate() throws a ConfigError whose message contains every word given.
void expect_config_error(const ModelConfig& config, const std::vector<std::string>& words) {
  try {
    config.validate();
    ADD_FAILURE() << "configuration accepted; expected an error naming " << words.front();
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    for (const std::string& word : words)
      EXPECT_NE(message.find(word), std::string::npos) << "message \"" << message << "\" does not name " << word;
  }
}

TEST(ConfigValidation, SmallTestConfigurationIsValid) {
  EXPECT_NO_THROW(testing::small_config(4).validate());
  EXPECT_NO_THROW(testing::small_config(1).validate());
}

TEST(ConfigValidation, DimNotDivisibleByHeads) {
  ModelConfig config = testing::small_config(1);
  config.dim = 18;  // a multiple of 2^(E-1) = 1, not of 4 heads
  config.heads = 4;
  expect_config_error(config, {"dim", "heads"});
}

TEST(ConfigValidation, DimNotDivisibleByNestingFactor) {
  ModelConfig config = testing::small_config(4);
  config.dim = 20;  // divisible by 2 heads, not by 2^(4-1) = 8
  config.heads = 2;
  expect_config_error(config, {"dim", "experts"});
}

TEST(ConfigValidation, ImageNotDivisibleByPatch) {
  ModelConfig tall = testing::small_config();
  tall.image_height = 9;
  expect_config_error(tall, {"image_height", "patch"});
  ModelConfig wide = testing::small_config();
  wide.image_width = 10;
  wide.patch = 4;
  wide.image_height = 8;
  expect_config_error(wide, {"image_width", "patch"});
}

TEST(ConfigValidation, NonPositiveFieldsAreNamed) {
  // A zero or negative size would pass the divisibility checks (0 % n == 0)
  // and fail much later; each must be caught and named.
  for (const auto& [name, unused] : testing::small_config().fields()) {
    for (int64_t bad : {0, -2}) {
      ModelConfig config = testing::small_config();
      config.set(name, bad);
      expect_config_error(config, {name});
    }
  }
}

TEST(ConfigValidation, ModelRejectsInfeasibleCapacity) {
  // E = 4: e_c must lie in (0.125, 1]. The model's entry point reports it as
  // a ConfigError about the capacity, not a crash or a silent clamp.
  const ModelConfig config = testing::small_config(4);
  Model<float> model(config, 1);
  const auto batch = testing::random_batch<float>(config, 2, 2);
  for (double capacity : {0.125, 0.05, 1.5}) {
    try {
      model.forward(batch.images.data(), batch.size, plan_routing(model.config(), capacity));
      ADD_FAILURE() << "e_c " << capacity << " accepted";
    } catch (const ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find("capacity"), std::string::npos) << error.what();
    }
  }
}

TEST(Presets, AllNamedPresetsValidate) {
  const std::vector<std::string> names = preset_names();
  for (const char* expected : {"tiny", "s16", "b16"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected << " missing";
  for (const std::string& name : names) EXPECT_NO_THROW(preset_config(name).validate()) << name;
}

TEST(Presets, ShapesAreTheDocumentedOnes) {
  const ModelConfig tiny = preset_config("tiny");
  EXPECT_EQ(tiny.image_height, 28);
  EXPECT_EQ(tiny.image_width, 28);
  EXPECT_EQ(tiny.channels, 1);
  EXPECT_EQ(tiny.patch, 4);
  EXPECT_EQ(tiny.dim, 64);
  EXPECT_EQ(tiny.depth, 6);
  EXPECT_EQ(tiny.heads, 4);
  EXPECT_EQ(tiny.experts, 4);
  EXPECT_EQ(tiny.classes, 10);
  EXPECT_EQ(tiny.tokens(), 49);
  // ViT-S/16 and ViT-B/16 at 224x224x3 (classes are the dataset's choice).
  const ModelConfig s16 = preset_config("s16"), b16 = preset_config("b16");
  for (const ModelConfig* c : {&s16, &b16}) {
    EXPECT_EQ(c->image_height, 224);
    EXPECT_EQ(c->image_width, 224);
    EXPECT_EQ(c->channels, 3);
    EXPECT_EQ(c->patch, 16);
    EXPECT_EQ(c->depth, 12);
    EXPECT_EQ(c->mlp_ratio, 4);
  }
  EXPECT_EQ(s16.dim, 384);
  EXPECT_EQ(s16.heads, 6);
  EXPECT_EQ(b16.dim, 768);
  EXPECT_EQ(b16.heads, 12);
  EXPECT_EQ(s16.expert_width(1), 48);  // the method page's example: 48, 96, 192, 384
  EXPECT_EQ(s16.expert_width(4), 384);
}

TEST(Presets, UnknownPresetIsAConfigError) {
  try {
    preset_config("vit-huge");
    ADD_FAILURE() << "unknown preset accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("vit-huge"), std::string::npos) << error.what();
  }
}

TEST(ConfigFields, SetAndFieldsRoundTrip) {
  ModelConfig config;
  int64_t value = 100;
  for (const auto& [name, unused] : config.fields()) config.set(name, value++);
  value = 100;
  for (const auto& [name, stored] : config.fields()) EXPECT_EQ(stored, value++) << name;
  EXPECT_EQ(config.fields().size(), 10u);
  EXPECT_THROW(config.set("width", 3), ConfigError);
}

TEST(ConfigFields, VmoeAddsItsFieldsAndSkipsTheNestedWidthRule) {
  ModelConfig config;
  config.arch = Arch::vmoe;
  config.experts = 5;
  config.dim = 60;
  config.heads = 4;
  EXPECT_NO_THROW(config.validate());  // MoNE would need dim divisible by 2^(E-1) = 16
  config.arch = Arch::mone;
  EXPECT_THROW(config.validate(), ConfigError);
  config.arch = Arch::vmoe;
  const auto fields = config.fields();
  ASSERT_EQ(fields.size(), 12u);
  EXPECT_EQ(fields[10].first, "moe_blocks");
  EXPECT_EQ(fields[11].first, "top_k");
  config.set("top_k", 6);
  EXPECT_THROW(config.validate(), ConfigError);  // more than the experts
  config.set("top_k", 2);
  config.set("moe_blocks", 7);
  EXPECT_THROW(config.validate(), ConfigError);  // more than the depth
  EXPECT_EQ(parse_arch("vmoe"), Arch::vmoe);
  EXPECT_EQ(arch_name(Arch::mone), "mone");
  EXPECT_THROW(parse_arch("moe"), ConfigError);
}

}  // namespace
}  // namespace mone
