#include "comm/world.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace mone {

namespace {
void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(text, length));
}

// The launcher's own idea of the local rank, when it states one.
int launcher_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return -1;
}
}  // namespace

World::World(int* argc, char*** argv) {
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  // The levels are ordered: anything from "serialized" up will do.
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw std::runtime_error("MPI_Init_thread: this MPI library provides thread level " + std::to_string(provided) +
                             ", mone needs MPI_THREAD_SERIALIZED (" + std::to_string(MPI_THREAD_SERIALIZED) +
                             "): collectives run on a communication thread");
  }
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  check_mpi(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank(node)");
  check_mpi(MPI_Comm_size(node, &local_size_), "MPI_Comm_size(node)");
  MPI_Comm_free(&node);
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  check_mpi(MPI_Get_processor_name(name, &length), "MPI_Get_processor_name");
  host_.assign(name, length);
  // A launcher that disagrees with MPI about the local rank means a binding
  // mistake (wrong GPU, wrong cores): refuse rather than train on it.
  const int stated = launcher_local_rank();
  if (stated >= 0 && stated != local_rank_)
    throw std::runtime_error(describe() + ": the launcher says local rank " + std::to_string(stated) +
                             " but MPI's shared-memory split says " + std::to_string(local_rank_));
}

World::~World() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::string World::describe() const {
  return "rank " + std::to_string(rank_) + "/" + std::to_string(size_) + " (local " + std::to_string(local_rank_) +
         "/" + std::to_string(local_size_) + ") on " + host_;
}

void World::abort(int code) const {
  // What was printed before the error stays in the job's log (MPI_Abort does not flush).
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

const World& LazyWorld::get() {
  if (!world_) world_ = std::make_unique<World>(argc_, argv_);
  return *world_;
}

bool started_by_a_launcher() {
  // Open MPI's mpirun, MPICH's and Intel MPI's PMI, PMIx, Slurm's srun.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

}  // namespace mone
