#include "tests/distributed/mpi_test_main.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

namespace mone::testing {
namespace {
World* the_world = nullptr;

// What the binary tells CTest (mpi_test_main.h): tests ran and passed (0),
// every test skipped on every rank (kExitAllSkipped), or a failure (1).
int job_exit_code(int gtest_result, const ::testing::UnitTest& tests) {
  // Summed over the ranks, so every rank gives mpirun the same answer (a
  // test may skip on some ranks only) and none leaves the others waiting.
  float counts[3] = {static_cast<float>(tests.successful_test_count()),
                     static_cast<float>(tests.skipped_test_count()), static_cast<float>(tests.failed_test_count())};
  communicator().allreduce(counts, 3, ElementType::float32, ReduceOp::sum, "test outcome");
  const float passed = counts[0], skipped = counts[1], failed = counts[2];
  if (failed > 0 || gtest_result != 0) return 1;
  const bool all_skipped = passed == 0 && skipped > 0;
  if (world().is_root() && skipped > 0)
    std::printf("mpi_test_main: %d test runs passed, %d skipped over %d ranks%s\n", static_cast<int>(passed),
                static_cast<int>(skipped), world().size(), all_skipped ? ": reported as skipped" : "");
  return all_skipped ? kExitAllSkipped : 0;
}
}  // namespace

World& world() { return *the_world; }

MpiCommunicator& communicator() {
  static MpiCommunicator communicator(world(), std::chrono::seconds(60));
  return communicator;
}
}  // namespace mone::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  mone::World world(&argc, &argv);
  mone::testing::the_world = &world;
  // Only rank 0 prints, so the log shows one result per test; a failure on
  // another rank still shows in the exit status mpirun returns.
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (!world.is_root()) delete listeners.Release(listeners.default_result_printer());
  const int gtest_result = RUN_ALL_TESTS();
  return mone::testing::job_exit_code(gtest_result, *::testing::UnitTest::GetInstance());
}
