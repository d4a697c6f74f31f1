// The `mone` command line: subcommands `train` and `eval`, each with options
// defined once (trainer/option_table.h). Errors go to stderr as one line
// naming the option; the exit codes are in trainer/exit_codes.h.
#pragma once

namespace mone {

int run_command_line(int argc, char** argv);

}  // namespace mone
