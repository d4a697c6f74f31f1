// The `mone` command line: subcommands `train` and `eval`, each with options
// defined once (trainer/option_table.h). Errors go to stderr as one line
// naming the option; the exit codes are in trainer/exit_codes.h.
#pragma once

#include "comm/world.h"

namespace mone {

// `world` is the MPI job: `train` runs on every rank of it (rank 0 writes the
// run directory), `eval` and `route` refuse more than one process.
int run_command_line(int argc, char** argv, const World& world);

}  // namespace mone
