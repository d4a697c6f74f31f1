// The process's place in an MPI job: global rank, world size, local rank.
// Every run is an MPI run; a process started without a launcher is rank 0 of
// a world of size 1. comm/ knows raw buffers and processes, never the model.
#pragma once

#include <memory>
#include <string>

namespace mone {

class World {
 public:
  // Initialises MPI at thread level "serialized" (collectives run on a
  // communicator's own thread, never two MPI calls at once; see
  // comm/comm_thread.h) and finalises it on destruction. One World per process.
  World(int* argc, char*** argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank among the processes on this machine (from a shared-memory split of
  // the world), and how many share it: the GPU index and the CPU thread share.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  bool is_root() const { return rank_ == 0; }
  // "rank 1/4 (local 1/2) on host" for logs and error messages.
  std::string describe() const;
  // Ends every process of the job with `code`: for a failure on one rank,
  // which would otherwise leave the others waiting in a collective.
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

// The World of a program that may not need one: started (MPI initialised) on
// the first get(), so a command that ends before it needs ranks (--help, an
// option error, a one-process tool) never pays MPI's start-up.
class LazyWorld {
 public:
  // argc and argv are handed to MPI when it starts.
  LazyWorld(int* argc, char*** argv) : argc_(argc), argv_(argv) {}
  const World& get();
  // The World if get() has started it, else nullptr.
  const World* started() const { return world_.get(); }

 private:
  int* argc_;
  char*** argv_;
  std::unique_ptr<World> world_;
};

// Whether the environment shows a launcher (mpirun, mpiexec, srun) that may
// have started this process as one of several ranks. Without one the process
// is certainly a world of size 1, and needs no MPI to know it.
bool started_by_a_launcher();

}  // namespace mone
