// World: rank, size and local rank as MPI and the launcher state them.
// Run under mpirun -np 1 and -np 2; expected values derive from the launcher.
#include <gtest/gtest.h>

#include <cstdlib>

#include "comm/world.h"

namespace {
mone::World* world = nullptr;

int launcher_value(const char* name, int otherwise) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : otherwise;
}

TEST(World, MatchesTheLauncher) {
  EXPECT_EQ(world->rank(), launcher_value("OMPI_COMM_WORLD_RANK", 0));
  EXPECT_EQ(world->size(), launcher_value("OMPI_COMM_WORLD_SIZE", 1));
  // One machine: every rank is local, and the local rank equals the rank.
  EXPECT_EQ(world->local_size(), world->size());
  EXPECT_EQ(world->local_rank(), world->rank());
  EXPECT_EQ(world->is_root(), world->rank() == 0);
  EXPECT_NE(world->describe().find("rank " + std::to_string(world->rank()) + "/"), std::string::npos);
}
}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  mone::World the_world(&argc, &argv);
  world = &the_world;
  // Only rank 0 prints, so the log shows one result per test.
  if (!the_world.is_root()) delete testing::UnitTest::GetInstance()->listeners().Release(
      testing::UnitTest::GetInstance()->listeners().default_result_printer());
  return RUN_ALL_TESTS();
}
