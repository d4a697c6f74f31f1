// The main of the distributed gtest binaries (mpi_test_main.cpp): initialises
// MPI through mone::World before any test runs and finalises it after all.
#pragma once

#include "comm/mpi_communicator.h"
#include "comm/world.h"

namespace mone::testing {
// This process's World, valid while tests run.
World& world();
// An MPI communicator over world() with a short watchdog (60 s), so a broken
// collective fails the test run instead of hanging it.
MpiCommunicator& communicator();
}  // namespace mone::testing
