// mone: the trainer's command line (train, eval, route, data). See docs/trainer.md.
#include <cstdio>

#include "comm/world.h"
#include "model/model.h"
#include "trainer/cli.h"
#include "trainer/exit_codes.h"

int main(int argc, char** argv) {
  // Line-buffered stdout, as on a terminal, also where it is a pipe or a file
  // (srun, sbatch logs): a line such as "saved checkpoint ..." must reach the
  // job's log when it is printed, not with a later one that a killed or
  // aborted rank never writes.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // OpenMP threads that sleep while they wait, unless the user chose (model/model.h).
  mone::restart_with_passive_openmp_wait(argv);
  // A command that needs ranks starts MPI (world size 1 without a launcher)
  // after its options are checked; --help, option errors and `mone data`
  // never start it. With --device cuda the CUDA backend picks this rank's
  // device from the World.
  mone::LazyWorld world(&argc, &argv);
  const int code = mone::run_command_line(argc, argv, world);
  // An error may have struck one rank only (a checkpoint write, a resume
  // check on rank 0) while the others wait in a collective; ending the job
  // frees them now instead of at their watchdog's deadline. A stop (75) is
  // agreed by all ranks and ends normally.
  const mone::World* started = world.started();
  if (code != mone::kExitSuccess && code != mone::kExitStopped && started != nullptr && started->size() > 1)
    started->abort(code);
  return code;
}
