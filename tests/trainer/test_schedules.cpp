// The learning-rate and capacity schedules: shapes, purity, and the errors
// of the --capacity grammar.
#include <set>

#include <gtest/gtest.h>

#include "trainer/capacity_schedule.h"
#include "trainer/lr_schedule.h"

namespace mone {
namespace {

TEST(LrSchedule, WarmupThenCosineToTheMinimum) {
  const LrSchedule lr{1.0, 0.1, 4, 14};
  EXPECT_DOUBLE_EQ(lr.at(0), 0.25);
  EXPECT_DOUBLE_EQ(lr.at(3), 1.0);
  EXPECT_DOUBLE_EQ(lr.at(4), 1.0);              // decay starts at the peak
  EXPECT_NEAR(lr.at(8) + lr.at(9), 1.1, 1e-12);  // decay over steps 4..13: symmetric about 8.5
  EXPECT_DOUBLE_EQ(lr.at(13), 0.1);             // the last step is at the minimum
  for (int64_t step = 4; step < 13; ++step) EXPECT_GT(lr.at(step), lr.at(step + 1));
}

TEST(CapacitySchedule, DrawsArePureFunctionsOfSeedAndStep) {
  const CapacitySchedule schedule = CapacitySchedule::parse("random", 4);
  const std::vector<double> allowed = default_capacities(4);
  ASSERT_EQ(allowed.size(), 10u);
  std::set<double> seen;
  for (int64_t step = 0; step < 200; ++step) {
    const double value = schedule.passes(7, step).at(0);
    EXPECT_EQ(value, CapacitySchedule::parse("random", 4).passes(7, step).at(0));
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), value), allowed.end());
    seen.insert(value);
  }
  EXPECT_EQ(seen.size(), allowed.size());  // 200 draws reach every value
}

TEST(CapacitySchedule, FixedListAndRange) {
  EXPECT_EQ(CapacitySchedule::parse("fixed:0.5", 4).passes(1, 9).at(0), 0.5);
  const CapacitySchedule list = CapacitySchedule::parse("random:0.25,1", 4);
  const CapacitySchedule range = CapacitySchedule::parse("range:0.2-0.6", 4);
  for (int64_t step = 0; step < 50; ++step) {
    const double value = list.passes(3, step).at(0);
    EXPECT_TRUE(value == 0.25 || value == 1.0);
    EXPECT_GE(range.passes(3, step).at(0), 0.2);
    EXPECT_LT(range.passes(3, step).at(0), 0.6);
  }
}

TEST(CapacitySchedule, FullCapacityStepsComeFirstThenTheSameDraws) {
  const CapacitySchedule plain = CapacitySchedule::parse("random", 4);
  const CapacitySchedule warm = CapacitySchedule::parse("random", 4, 5);
  for (int64_t step = 0; step < 5; ++step) EXPECT_EQ(warm.passes(3, step).at(0), 1.0) << step;
  bool below_one = false;
  for (int64_t step = 5; step < 40; ++step) {
    EXPECT_EQ(warm.passes(3, step).at(0), plain.passes(3, step).at(0)) << step;
    below_one = below_one || warm.passes(3, step).at(0) < 1.0;
  }
  EXPECT_TRUE(below_one);
}

// The sandwich rule: the largest budget, the smallest of the default set and
// K draws from it, each a pure function of (seed, step); the warm-up still
// comes first with its one pass.
TEST(CapacitySchedule, SandwichTrainsTheLargestTheSmallestAndKDraws) {
  const CapacitySchedule sandwich = CapacitySchedule::parse("sandwich:3", 4, 2);
  EXPECT_EQ(sandwich.passes(5, 0), std::vector<double>{1.0});
  EXPECT_EQ(sandwich.passes(5, 1), std::vector<double>{1.0});
  const std::vector<double> allowed = default_capacities(4);
  std::set<double> drawn;
  for (int64_t step = 2; step < 100; ++step) {
    const std::vector<double> passes = sandwich.passes(5, step);
    ASSERT_EQ(passes.size(), 5u);
    EXPECT_EQ(passes[0], 1.0);
    EXPECT_EQ(passes[1], 0.15);
    EXPECT_EQ(passes, CapacitySchedule::parse("sandwich:3", 4, 2).passes(5, step));
    for (size_t k = 2; k < passes.size(); ++k) {
      EXPECT_NE(std::find(allowed.begin(), allowed.end(), passes[k]), allowed.end());
      drawn.insert(passes[k]);
    }
  }
  EXPECT_EQ(drawn.size(), allowed.size());
  EXPECT_EQ(CapacitySchedule::parse("sandwich", 4).passes(5, 9).size(), 4u);  // K = 2 by default
  EXPECT_EQ(CapacitySchedule::parse("sandwich:0", 4).passes(5, 9), (std::vector<double>{1.0, 0.15}));
}

TEST(CapacitySchedule, DefaultSetDropsInfeasibleValues) {
  EXPECT_EQ(default_capacities(2), (std::vector<double>{0.55, 0.65, 0.75, 0.85, 0.95, 1.0}));
}

TEST(CapacitySchedule, BadSpecificationsSayWhatIsWrong) {
  auto message = [](const std::string& spec) {
    try {
      CapacitySchedule::parse(spec, 4);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("fixed:2").find("not feasible"), std::string::npos);
  EXPECT_NE(message("fixed:abc").find("'abc' is not a number"), std::string::npos);
  EXPECT_NE(message("range:0.6-0.2").find("LO must be below HI"), std::string::npos);
  EXPECT_NE(message("sometimes").find("is not one of"), std::string::npos);
  EXPECT_NE(message("sandwich:x").find("K must be a whole number"), std::string::npos);
  EXPECT_NE(message("sandwich:17").find("K must be a whole number"), std::string::npos);
  EXPECT_THROW(parse_capacity_list("0.5,,1", 4), std::invalid_argument);
}

}  // namespace
}  // namespace mone
