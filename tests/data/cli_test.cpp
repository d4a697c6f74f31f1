// The mone-data tool as a user runs it: exit codes and messages.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/data/test_support.h"

namespace mone {
namespace {

using Result = testing::CommandResult;

Result run_tool(const std::string& arguments) { return testing::run_command(std::string(MONE_DATA_TOOL) + " " + arguments); }

TEST(Cli, SyntheticConversion) {
  testing::TempDir dir;
  const Result result = run_tool("--out " + dir.path().string() +
                                 " --source synthetic --height 12 --width 10 --channels 3 --classes 5"
                                 " --count 30 --test-count 7 --val-count 4 --shard-size 8 --progress lines");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_CONTAINS(result.output, "train: 26 samples in 4 shards");
  EXPECT_CONTAINS(result.output, "val: 4 samples in 1 shards");
  EXPECT_CONTAINS(result.output, "test: 7 samples in 1 shards");
  EXPECT_CONTAINS(result.output, "mone-data: 100% 37/37 samples");
  const Dataset dataset = Dataset::open(dir.path(), "train");
  EXPECT_EQ(dataset.shape, (ImageShape{12, 10, 3}));
  EXPECT_EQ(dataset.classes, 5);
  EXPECT_EQ(testing::loader_error(dir.path(), "train"), "");
}

TEST(Cli, BadValuesNameTheOptionAndFailCleanly) {
  testing::TempDir dir;
  const std::string out = " --out " + (dir.path() / "x").string();
  struct Case {
    std::string arguments, message;
  };
  for (const Case& c : std::vector<Case>{
           {out + " --shard-size 0", "mone-data: error: --shard-size 0 must be positive"},
           {out + " --shard-size many", "mone-data: error: the argument ('many') for option '--shard-size' is invalid"},
           {out + " --source mnist", "mone-data: error: --source 'mnist' is not one of"},
           {out + " --source synthetic --count 10 --val-count 10", "mone-data: error: --val-count 10 must be in [0, 10)"},
           {out + " --source synthetic --height 0", "mone-data: error: synthetic image shape 0x224x3 must be positive"},
           {out + " --source cifar10", "mone-data: error: --source cifar10 needs --input DIR"},
           {out + " --deflate 12 --source synthetic --count 5", "mone-data: error: --deflate 12 must be in 0..9"},
           {"", "mone-data: error: --out DIR is required"},
       }) {
    const Result result = run_tool(c.arguments);
    EXPECT_NE(result.status, 0) << c.arguments;
    EXPECT_CONTAINS(result.output, c.message);
    EXPECT_EQ(result.output.find("terminate"), std::string::npos) << result.output;
  }
}

}  // namespace
}  // namespace mone
