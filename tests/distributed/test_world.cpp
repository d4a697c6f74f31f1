// World: rank, size and local rank as MPI and the launcher state them.
// Run under mpirun -np 1 and -np 2 (CTest), or srun; expected values come
// from the launcher's environment: Open MPI's mpirun, else Slurm's srun.
#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>

#include "comm/world.h"
#include "tests/distributed/mpi_test_main.h"

namespace {
// The first of `names` the launcher set; `otherwise` (a singleton's value) if none.
int launcher_value(std::initializer_list<const char*> names, int otherwise) {
  for (const char* name : names)
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return otherwise;
}

TEST(World, MatchesTheLauncher) {
  const mone::World* world = &mone::testing::world();
  EXPECT_EQ(world->rank(), launcher_value({"OMPI_COMM_WORLD_RANK", "SLURM_PROCID"}, 0));
  EXPECT_EQ(world->size(), launcher_value({"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"}, 1));
  // One machine: every rank is local, and the local rank equals the rank.
  EXPECT_EQ(world->local_size(), world->size());
  EXPECT_EQ(world->local_rank(), world->rank());
  EXPECT_EQ(world->is_root(), world->rank() == 0);
  EXPECT_NE(world->describe().find("rank " + std::to_string(world->rank()) + "/"), std::string::npos);
}
}  // namespace
