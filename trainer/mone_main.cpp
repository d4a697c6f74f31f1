// mone: the trainer's command line (train, eval). See docs/trainer.md.
#include <cstdio>
#include <exception>
#include <memory>

#include "comm/world.h"
#include "trainer/cli.h"
#include "trainer/exit_codes.h"

int main(int argc, char** argv) {
  // Every run is an MPI run (world size 1 without a launcher). With --device
  // cuda the trainer's CUDA backend picks this rank's device.
  std::unique_ptr<mone::World> world;
  try {
    world = std::make_unique<mone::World>(&argc, &argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "mone: error: %s\n", error.what());
    return mone::kExitFailure;
  }
  const int code = mone::run_command_line(argc, argv, *world);
  // An error may have struck one rank only (a checkpoint write, a resume
  // check on rank 0) while the others wait in a collective; ending the job
  // frees them now instead of at their watchdog's deadline. A stop (75) is
  // agreed by all ranks and ends normally.
  if (code != mone::kExitSuccess && code != mone::kExitStopped && world->size() > 1) world->abort(code);
  return code;
}
