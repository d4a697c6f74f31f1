#include "comm/gradient_buckets.h"

#include <algorithm>
#include <stdexcept>

#include "comm/bfloat16.h"

namespace mone {

GradientBuckets::GradientBuckets(Communicator& comm, float* grads, int64_t numel, const BucketOptions& options)
    : comm_(comm), grads_(grads), numel_(numel), options_(options) {
  if (options.bucket_bytes < 4 || options.first_bucket_bytes < 4)
    throw std::invalid_argument("GradientBuckets: bucket sizes must hold at least one float32");
  const int64_t first = options.first_bucket_bytes / static_cast<int64_t>(sizeof(float));
  const int64_t rest = options.bucket_bytes / static_cast<int64_t>(sizeof(float));
  for (int64_t end = numel; end > 0;) {
    const int64_t begin = std::max<int64_t>(0, end - (buckets_.empty() ? first : rest));
    buckets_.push_back({begin, end});
    end = begin;
  }
  ready_.assign(buckets_.size(), 0);
  if (options.wire == ElementType::bfloat16) {
    for (const Bucket& bucket : buckets_) staging_.emplace_back(static_cast<size_t>(bucket.end - bucket.begin));
  }
}

void GradientBuckets::begin(const std::string& context) {
  std::fill(ready_.begin(), ready_.end(), 0);
  started_ = 0;
  context_ = context;
}

void GradientBuckets::mark_ready(int64_t begin, int64_t end) {
  if (begin < 0 || end > numel_ || begin > end)
    throw std::out_of_range("GradientBuckets::mark_ready: [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") is outside the gradient buffer of " + std::to_string(numel_));
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const int64_t overlap = std::min(end, buckets_[b].end) - std::max(begin, buckets_[b].begin);
    if (overlap > 0) ready_[b] += overlap;
  }
  while (started_ < buckets_.size() && ready_[started_] == buckets_[started_].end - buckets_[started_].begin) {
    start(started_);
    ++started_;
  }
}

void GradientBuckets::start(size_t b) {
  const Bucket& bucket = buckets_[b];
  const size_t count = static_cast<size_t>(bucket.end - bucket.begin);
  // With one rank the average is the identity: nothing to send.
  if (comm_.size() == 1) return;
  const std::string context =
      context_ + ", gradient bucket " + std::to_string(b + 1) + "/" + std::to_string(buckets_.size());
  if (options_.wire == ElementType::float32) {
    comm_.start_allreduce(grads_ + bucket.begin, count, ElementType::float32, ReduceOp::average, context);
    return;
  }
  std::vector<uint16_t>& staged = staging_[b];
  for (size_t i = 0; i < count; ++i) staged[i] = float_to_bfloat16(grads_[bucket.begin + static_cast<int64_t>(i)]);
  comm_.start_allreduce(staged.data(), count, ElementType::bfloat16, ReduceOp::average, context);
}

void GradientBuckets::finish() {
  if (started_ != buckets_.size()) {
    const Bucket& missing = buckets_[started_];
    throw std::logic_error("GradientBuckets (" + context_ + "): bucket " + std::to_string(started_ + 1) + " [" +
                           std::to_string(missing.begin) + ", " + std::to_string(missing.end) +
                           ") has gradients never marked ready");
  }
  comm_.wait_started();
  if (options_.wire == ElementType::bfloat16 && comm_.size() > 1) {
    for (size_t b = 0; b < buckets_.size(); ++b) {
      const std::vector<uint16_t>& staged = staging_[b];
      float* bucket = grads_ + buckets_[b].begin;
      for (size_t i = 0; i < staged.size(); ++i) bucket[i] = bfloat16_to_float(staged[i]);
    }
  }
}

}  // namespace mone
