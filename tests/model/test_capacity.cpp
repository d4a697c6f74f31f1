// Capacity distribution from an effective capacity (method page, "Capacity
// distribution"): the reference table, both constraints, the e_c = 1 limit,
// the infeasible range, and flooring to tokens per expert.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/capacity.h"
#include "model/config.h"

namespace mone {
namespace {

// a_j = d_j / D = 2^(j-E), index 0 = smallest expert.
double compute_fraction(int64_t index, int64_t experts) { return std::ldexp(1.0, static_cast<int>(index - (experts - 1))); }

TEST(Capacity, MatchesMethodPageTable) {
  // The method page's table, E = 4, smallest to full expert, 4 decimals:
  // checked to 1e-3 as the page asks.
  const struct {
    double effective;
    double c[4];
  } table[] = {{0.15, {0.8163, 0.1755, 0.0081, 0.0000}}, {0.2, {0.6009, 0.3104, 0.0828, 0.0059}},
               {0.3, {0.4135, 0.3214, 0.1942, 0.0709}},  {0.5, {0.2268, 0.2346, 0.2511, 0.2875}},
               {0.8, {0.0594, 0.0843, 0.1696, 0.6867}},  {0.95, {0.0082, 0.0160, 0.0617, 0.9141}}};
  for (const auto& row : table) {
    const std::vector<double> c = capacity_for(row.effective, 4);
    ASSERT_EQ(c.size(), 4u);
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(c[j], row.c[j], 1e-3) << "e_c " << row.effective << " expert " << j + 1;
  }
}

TEST(Capacity, SatisfiesBothConstraintsOverSweep) {
  // sum c = 1 and sum c_j a_j = e_c to 1e-6, every c_j in [0, 1], for E = 2..6
  // across the whole feasible range (the bisection must not stall near the ends).
  for (int64_t experts = 2; experts <= 6; ++experts) {
    const double lowest = std::ldexp(1.0, static_cast<int>(1 - experts));
    for (int i = 1; i <= 40; ++i) {
      const double effective = lowest + (1.0 - lowest) * i / 40.0;
      const std::vector<double> c = capacity_for(effective, experts);
      ASSERT_EQ(static_cast<int64_t>(c.size()), experts);
      double total = 0, compute = 0;
      for (int64_t j = 0; j < experts; ++j) {
        EXPECT_GE(c[j], 0.0);
        EXPECT_LE(c[j], 1.0);
        total += c[j];
        compute += c[j] * compute_fraction(j, experts);
      }
      EXPECT_NEAR(total, 1.0, 1e-6) << "E " << experts << " e_c " << effective;
      EXPECT_NEAR(compute, effective, 1e-6) << "E " << experts << " e_c " << effective;
    }
  }
}

TEST(Capacity, FullCapacityPutsEveryTokenAtTheFullExpert) {
  for (int64_t experts = 1; experts <= 5; ++experts) {
    const std::vector<double> c = capacity_for(1.0, experts);
    ASSERT_EQ(static_cast<int64_t>(c.size()), experts);
    EXPECT_EQ(c.back(), 1.0) << "E " << experts;
    for (int64_t j = 0; j + 1 < experts; ++j) EXPECT_EQ(c[j], 0.0) << "E " << experts << " expert " << j + 1;
    // Exactly N at the full expert, for any N (c_E = 1 - tiny would floor to N - 1).
    for (int64_t tokens : {1, 16, 49, 196}) {
      std::vector<int64_t> expected(experts, 0);
      expected.back() = tokens;
      EXPECT_EQ(tokens_per_expert(c, tokens), expected) << "E " << experts << " N " << tokens;
    }
  }
}

void expect_infeasible(double effective, int64_t experts) {
  try {
    capacity_for(effective, experts);
    ADD_FAILURE() << "e_c " << effective << " with E " << experts << " was accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("capacity"), std::string::npos)
        << "message does not mention the capacity: " << error.what();
  }
}

TEST(Capacity, InfeasibleEffectiveCapacityIsAConfigError) {
  expect_infeasible(0.125, 4);  // = 2^(1-E): only reachable with every token at expert 1, excluded
  expect_infeasible(0.1, 4);
  expect_infeasible(0.0, 4);
  expect_infeasible(-0.5, 4);
  expect_infeasible(1.0 + 1e-9, 4);
  expect_infeasible(2.0, 4);
  expect_infeasible(0.5, 2);    // = 2^(1-2)
  expect_infeasible(0.99, 1);   // E = 1: only e_c = 1
  expect_infeasible(std::numeric_limits<double>::quiet_NaN(), 4);
}

TEST(Capacity, JustInsideTheFeasibleRangeIsAccepted) {
  EXPECT_NO_THROW(capacity_for(0.125 + 1e-6, 4));
  EXPECT_NO_THROW(capacity_for(0.5 + 1e-6, 2));
}

TEST(Capacity, TokensPerExpertFloorsAllButTheSmallest) {
  // floor(c_j N) for j > 1 and the rest at expert 1: c = (0.1, 0.2, 0.3, 0.4),
  // N = 16 -> 6.4 -> 6, 4.8 -> 4, 3.2 -> 3, and expert 1 takes 16 - 13 = 3.
  EXPECT_EQ(tokens_per_expert({0.1, 0.2, 0.3, 0.4}, 16), (std::vector<int64_t>{3, 3, 4, 6}));
  // Table row e_c = 0.5 at N = 49: 14.09 -> 14, 12.30 -> 12, 11.50 -> 11, rest 12.
  EXPECT_EQ(tokens_per_expert(capacity_for(0.5, 4), 49), (std::vector<int64_t>{12, 11, 12, 14}));
  // Table row e_c = 0.2 at N = 16: 0.09 -> 0, 1.32 -> 1, 4.97 -> 4, rest 11.
  EXPECT_EQ(tokens_per_expert(capacity_for(0.2, 4), 16), (std::vector<int64_t>{11, 4, 1, 0}));
}

TEST(Capacity, RealisedCapacityIsTheFlooredMeanCompute) {
  // sum_j k_j a_j / N with a = (1/8, 1/4, 1/2, 1).
  EXPECT_DOUBLE_EQ(realised_capacity({12, 11, 12, 14}), (12 * 0.125 + 11 * 0.25 + 12 * 0.5 + 14) / 49.0);
  EXPECT_DOUBLE_EQ(realised_capacity({0, 0, 0, 49}), 1.0);
  EXPECT_DOUBLE_EQ(realised_capacity({16, 0, 0, 0}), 0.125);
  EXPECT_DOUBLE_EQ(realised_capacity({3, 1}), (3 * 0.5 + 1) / 4.0);
}

}  // namespace
}  // namespace mone
