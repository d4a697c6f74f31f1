#include "trainer/signals.h"

#include <csignal>
#include <cstring>
#include <initializer_list>

namespace mone {

namespace {
// Written only by the handler; sig_atomic_t keeps the write async-signal-safe.
volatile std::sig_atomic_t requested_by = 0;

extern "C" void record_stop_request(int signal) { requested_by = signal; }
}  // namespace

void install_stop_handlers() {
  for (const int signal : {SIGTERM, SIGUSR1, SIGINT}) {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = record_stop_request;
    sigemptyset(&action.sa_mask);
    // Restart interrupted reads and waits; reset SIGINT so a second Ctrl-C kills.
    action.sa_flags = SA_RESTART | (signal == SIGINT ? SA_RESETHAND : 0);
    sigaction(signal, &action, nullptr);
  }
}

bool stop_requested() { return requested_by != 0; }
int stop_signal() { return requested_by; }

}  // namespace mone
