#include "data/worker_pool.h"

#include <algorithm>

namespace mone {

WorkerPool::WorkerPool(int threads) : parts_(std::max(threads, 1)) {
  for (int i = 1; i < parts_; ++i) helpers_.emplace_back(&WorkerPool::helper_loop, this, i);
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& helper : helpers_) helper.join();
}

void WorkerPool::run_part(int index) {
  const int64_t begin = count_ * index / parts_;
  const int64_t end = count_ * (index + 1) / parts_;
  try {
    if (begin < end) (*work_)(begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void WorkerPool::parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& work) {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    work_ = &work;
    count_ = count;
    pending_ = parts_ - 1;
    error_ = nullptr;
    ++generation_;
  }
  start_.notify_all();
  run_part(0);
  std::unique_lock<std::mutex> held(mutex_);
  done_.wait(held, [&] { return pending_ == 0; });
  if (error_) std::rethrow_exception(error_);
}

void WorkerPool::helper_loop(int index) {
  uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> held(mutex_);
      start_.wait(held, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_part(index);
    {
      std::lock_guard<std::mutex> guard(mutex_);
      --pending_;
    }
    done_.notify_one();
  }
}

}  // namespace mone
