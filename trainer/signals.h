// Stop requests by signal. SIGTERM (schedulers before a kill), SIGUSR1
// (Slurm's --signal) and SIGINT (Ctrl-C) only set a flag: the training loop
// finishes the current step, writes a checkpoint and exits with kExitStopped.
// A second SIGINT kills at once (the handler is reset after the first).
#pragma once

namespace mone {

void install_stop_handlers();
bool stop_requested();
// The signal that asked to stop (0 if none), for the log line.
int stop_signal();

}  // namespace mone
