// A simulated dead rank: every rank but rank 1 enters an allreduce, rank 1
// never does. The watchdog (2 s) must end the whole job with a message naming
// the collective; expect_watchdog_abort.cmake checks that it does, quickly
// and with a non-zero exit. Exits 0 only if the watchdog failed to fire.
#include <chrono>
#include <thread>
#include <vector>

#include "comm/mpi_communicator.h"

int main(int argc, char** argv) {
  mone::World world(&argc, &argv);
  mone::MpiCommunicator comm(world, std::chrono::seconds(2));
  std::vector<float> gradients(1000, 1.0f);
  if (comm.rank() == 1)
    std::this_thread::sleep_for(std::chrono::seconds(30));  // hung: longer than any expected abort
  else
    comm.allreduce(gradients.data(), gradients.size(), mone::ElementType::float32, mone::ReduceOp::sum, "step 120");
  return 0;
}
