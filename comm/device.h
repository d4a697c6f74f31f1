// Which accelerator a rank drives: the one numbered by its local rank, so the
// ranks of a node take distinct devices. Called first thing in main(), before
// anything touches CUDA, because the first CUDA call creates a context on the
// current device and a context on the wrong device costs memory on it.
#pragma once

#include "comm/world.h"

namespace mone {

// CUDA builds (MONE_WITH_CUDA defined, mone_comm linked to the CUDA runtime):
// selects device local_rank() and returns its index; throws naming the rank
// and the device count when the node has fewer devices than local ranks.
// CPU builds: returns -1 (no device).
int select_device_for_local_rank(const World& world);

}  // namespace mone
