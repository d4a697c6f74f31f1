// A small fork-join pool for decoding and augmenting one batch: the calling
// thread and (threads - 1) helpers each take a contiguous range of samples.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mone {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Calls work(begin, end) over a split of [0, count) and returns when all
  // parts are done. An exception in any part is rethrown here.
  void parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& work);

 private:
  void helper_loop(int index);
  void run_part(int index);

  int parts_;
  std::vector<std::thread> helpers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* work_ = nullptr;
  int64_t count_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace mone
