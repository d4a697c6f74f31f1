// World: rank, size and local rank as MPI and the launcher state them.
// Run under mpirun -np 1 and -np 2; expected values derive from the launcher.
#include <gtest/gtest.h>

#include <cstdlib>

#include "comm/world.h"
#include "tests/distributed/mpi_test_main.h"

namespace {
int launcher_value(const char* name, int otherwise) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : otherwise;
}

TEST(World, MatchesTheLauncher) {
  const mone::World* world = &mone::testing::world();
  EXPECT_EQ(world->rank(), launcher_value("OMPI_COMM_WORLD_RANK", 0));
  EXPECT_EQ(world->size(), launcher_value("OMPI_COMM_WORLD_SIZE", 1));
  // One machine: every rank is local, and the local rank equals the rank.
  EXPECT_EQ(world->local_size(), world->size());
  EXPECT_EQ(world->local_rank(), world->rank());
  EXPECT_EQ(world->is_root(), world->rank() == 0);
  EXPECT_NE(world->describe().find("rank " + std::to_string(world->rank()) + "/"), std::string::npos);
}
}  // namespace
