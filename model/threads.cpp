#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <omp.h>

#include "model/model.h"

#ifdef MONE_HAVE_OPENBLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace mone {

namespace {
int ranks_on_this_machine() {
  // Set by Open MPI's and MPICH's launchers; Slurm's srun sets the first too via PMIx.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n > 0) return n;
    }
  }
  return 1;
}
int current_threads = 0;
}  // namespace

int default_thread_count() {
  cpu_set_t set;
  const int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(1, cores / ranks_on_this_machine());
}

void set_thread_count(int threads) {
  current_threads = std::max(1, threads);
  omp_set_num_threads(current_threads);
#ifdef MONE_HAVE_OPENBLAS
  openblas_set_num_threads(current_threads);
#endif
}

void restart_with_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  // The binary's own path, not /proc/self/exe: the process name (comm, what
  // ps and pgrep show) comes from the path executed.
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) return;
  self[length] = '\0';
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv(self, argv);  // returns only when it failed: then run on with libgomp's default
}

int thread_count() {
  if (current_threads == 0) set_thread_count(default_thread_count());
  return current_threads;
}

}  // namespace mone
