// Bucketed gradient allreduce over one contiguous float32 buffer, overlapped
// with backward (docs/distributed.md, "Gradient buckets").
//
// The buffer is cut into fixed buckets from its end toward its start: the
// parameters are stored in forward order, so backward finishes the end of the
// buffer first. The first bucket is small so communication starts early; the
// others have the configured size. The caller reports each range of elements
// whose gradients are final (mark_ready, in any order); a bucket is started
// as soon as all its elements are final and every bucket before it has been
// started, so the buckets start in the same fixed order on every rank. Each
// bucket is averaged over the ranks (ReduceOp::average). comm/ knows the raw
// buffer only, never which parameter an element belongs to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace mone {

struct BucketOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t first_bucket_bytes = int64_t{1} << 20;
  // What travels: float32, or bf16 (half the bytes; each bucket is rounded to
  // bf16 before the allreduce and the average written back as float32).
  ElementType wire = ElementType::float32;
};

class GradientBuckets {
 public:
  struct Bucket {
    int64_t begin = 0, end = 0;  // elements of the gradient buffer
  };

  // `grads` holds `numel` float32 and outlives this object.
  GradientBuckets(Communicator& comm, float* grads, int64_t numel, const BucketOptions& options);

  // In start order: buckets()[0] ends at numel, the last begins at 0.
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Begins one synchronisation; `context` ("step 12") names it in failures.
  void begin(const std::string& context);
  // The gradients of [begin, end) are final for this synchronisation; starts
  // every bucket that became complete, in order.
  void mark_ready(int64_t begin, int64_t end);
  // Waits for every bucket; afterwards the buffer holds the average over the
  // ranks. Throws std::logic_error if some elements were never marked ready.
  void finish();

 private:
  void start(size_t bucket);

  Communicator& comm_;
  float* grads_;
  int64_t numel_;
  BucketOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<int64_t> ready_;                   // final elements per bucket
  size_t started_ = 0;                           // buckets started so far
  std::vector<std::vector<uint16_t>> staging_;  // bf16 wire: one buffer per bucket
  std::string context_;
};

}  // namespace mone
