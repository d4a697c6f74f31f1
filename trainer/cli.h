// The `mone` command line: subcommands `train` and `eval`, each with options
// defined once (trainer/option_table.h). Errors go to stderr as one line
// naming the option; the exit codes are in trainer/exit_codes.h.
#pragma once

#include "comm/world.h"

namespace mone {

// `world` is the MPI job, started only by a command that needs it, after its
// options are parsed and checked: `train` runs on every rank of it (rank 0
// writes the run directory), `eval` refuses more than one process; `route`
// and `data` start it only under a launcher, to refuse more than one.
int run_command_line(int argc, char** argv, LazyWorld& world);

}  // namespace mone
