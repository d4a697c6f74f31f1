// The main of the distributed gtest binaries (mpi_test_main.cpp): initialises
// MPI through mone::World before any test runs and finalises it after all.
#pragma once

#include "comm/world.h"

namespace mone::testing {
// This process's World, valid while tests run.
World& world();
}  // namespace mone::testing
