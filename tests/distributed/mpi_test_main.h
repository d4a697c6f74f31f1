// The main of the distributed gtest binaries (mpi_test_main.cpp): initialises
// MPI through mone::World before any test runs and finalises it after all.
//
// What CTest is told, one result for the whole binary (all its tests run in
// one mpirun):
//   - failed (exit 1) when a test failed on any rank;
//   - skipped (exit kExitAllSkipped, the SKIP_RETURN_CODE of mone_mpi_test)
//     when no test passed on any rank and at least one skipped: the usual
//     case of a GPU test on a machine without GPUs;
//   - passed (exit 0) when tests passed. Tests that skipped beside them do
//     not change that; rank 0 then ends its output with a line counting the
//     passed and skipped test runs (ctest -V, Testing/Temporary/LastTest.log),
//     and gtest's summary names each skipped test.
#pragma once

#include "comm/mpi_communicator.h"
#include "comm/world.h"

namespace mone::testing {
// The exit code of a binary whose every test skipped (Automake's convention).
constexpr int kExitAllSkipped = 77;
// This process's World, valid while tests run.
World& world();
// An MPI communicator over world() with a short watchdog (60 s), so a broken
// collective fails the test run instead of hanging it.
MpiCommunicator& communicator();
}  // namespace mone::testing
