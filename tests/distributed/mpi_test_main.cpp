#include "tests/distributed/mpi_test_main.h"

#include <gtest/gtest.h>

#include <chrono>

namespace mone::testing {
namespace {
World* the_world = nullptr;
}

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
  return RUN_ALL_TESTS();
}
