// Super-classes (trainer/superclasses.h): the clustering on confusion
// matrices whose groups are known, its tie rule, the file round trip and its
// errors; and `mone superclasses` end to end on the fixture's dataset.
#include <fstream>

#include <regex>

#include <gtest/gtest.h>

#include "tests/trainer/trainer_fixture.h"
#include "trainer/superclasses.h"

namespace mone {
namespace {

// 6 classes, 100 images each: {0, 3}, {1, 4, 5} and {2} confuse among
// themselves only; {1, 4, 5} more weakly.
std::vector<int64_t> block_confusion() {
  std::vector<int64_t> m(36, 0);
  const auto confuse = [&](int a, int b, int n) {
    m[a * 6 + b] += n;
    m[b * 6 + a] += n;
  };
  confuse(0, 3, 20);
  confuse(1, 4, 8);
  confuse(4, 5, 9);
  confuse(1, 5, 7);
  for (int c = 0; c < 6; ++c) {
    int64_t wrong = 0;
    for (int j = 0; j < 6; ++j) wrong += m[c * 6 + j];
    m[c * 6 + c] = 100 - wrong;
  }
  return m;
}

TEST(Superclasses, ClusteringFindsTheConfusedGroupsNumberedBySmallestClass) {
  const Superclasses groups = cluster_confusion(block_confusion(), 6, 3);
  EXPECT_EQ(groups.count, 3);
  EXPECT_EQ(groups.of_class, (std::vector<int32_t>{0, 1, 2, 0, 1, 1}));
  // One group: everything; six: every class alone.
  EXPECT_EQ(cluster_confusion(block_confusion(), 6, 1).of_class, std::vector<int32_t>(6, 0));
  EXPECT_EQ(cluster_confusion(block_confusion(), 6, 6).of_class, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_THROW(cluster_confusion(block_confusion(), 6, 7), std::invalid_argument);
}

TEST(Superclasses, EqualSimilaritiesMergeTheSmallestClassesFirst) {
  // No confusion at all: every pair is equally (un)similar, so the rule
  // alone decides: 0 takes 1, then {0,1} takes 2 (its mean similarity ties
  // with every other pair's 0 and comes first).
  std::vector<int64_t> diagonal(16, 0);
  for (int c = 0; c < 4; ++c) diagonal[c * 4 + c] = 10;
  EXPECT_EQ(cluster_confusion(diagonal, 4, 2).of_class, (std::vector<int32_t>{0, 0, 0, 1}));
}

TEST(Superclasses, FileRoundTripAndErrors) {
  testing::TrainerFixture fixture;
  const std::filesystem::path path = fixture.root() / "groups.txt";
  const Superclasses groups = cluster_confusion(block_confusion(), 6, 3);
  write_superclasses(path.string(), groups, {"made by a test"});
  const Superclasses read = read_superclasses(path.string(), 6);
  EXPECT_EQ(read.of_class, groups.of_class);
  EXPECT_EQ(read.count, 3);
  EXPECT_THROW(read_superclasses(path.string(), 7), std::runtime_error);  // class 6 missing
  std::ofstream(fixture.root() / "twice.txt") << "0 0\n0 1\n1 1\n";
  EXPECT_THROW(read_superclasses((fixture.root() / "twice.txt").string(), 2), std::runtime_error);
  std::ofstream(fixture.root() / "gap.txt") << "0 0\n1 2\n";  // super-class 1 empty
  EXPECT_THROW(read_superclasses((fixture.root() / "gap.txt").string(), 2), std::runtime_error);
}

TEST(Superclasses, CommandWritesAFileTrainingReads) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(testing::run_mone(testing::with(testing::small_run(fixture, "dense"), {"--steps", "3", "--capacity", "fixed:1"})).exit_code, 0);
  const std::filesystem::path file = fixture.root() / "superclasses.txt";
  const testing::ProcessResult made =
      testing::run_mone({"superclasses", "--data", fixture.data().string(), "--checkpoint", (fixture.root() / "dense").string(),
                "--groups", "3", "--threads", "1", "--out", file.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.out.find("super-class 2: "), std::string::npos) << made.out;
  EXPECT_EQ(read_superclasses(file.string(), 10).count, 3);
  // --experts follows the file; a different --experts is refused.
  const std::vector<std::string> vmoe = {"--arch", "vmoe", "--capacity", "fixed:1", "--eval-capacities", "1",
                                         "--steps", "2", "--superclasses", file.string()};
  const testing::ProcessResult trained = testing::run_mone(testing::with(testing::small_run(fixture, "vmoe"), vmoe));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_TRUE(std::regex_search(trained.out, std::regex("\\n  experts +3\\n"))) << trained.out;
  const testing::ProcessResult refused = testing::run_mone(testing::with(testing::small_run(fixture, "vmoe4"), testing::with(vmoe, {"--experts", "4"})));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--experts: 4 experts for the 3 super-classes"), std::string::npos) << refused.err;
}

TEST(Superclasses, VmoeOptionErrorsNameTheOption) {
  testing::TrainerFixture fixture;
  const auto error_of = [&](const std::vector<std::string>& options) {
    const testing::ProcessResult result = testing::run_mone(testing::with(testing::small_run(fixture, "run"), options));
    EXPECT_EQ(result.exit_code, 2) << result.err;
    return result.err;
  };
  EXPECT_NE(error_of({"--arch", "vmoe"}).find("--capacity: --arch vmoe routes whole images"), std::string::npos);
  EXPECT_NE(error_of({"--top-k", "2"}).find("--top-k: is for --arch vmoe"), std::string::npos);
  EXPECT_NE(error_of({"--arch", "moe"}).find("--arch: model config: unknown arch 'moe'"), std::string::npos);
  EXPECT_NE(error_of({"--arch", "vmoe", "--capacity", "fixed:1", "--eval-capacities", "0.5"})
                .find("only e_c 1"),
            std::string::npos);
}

}  // namespace
}  // namespace mone
