// GradientBuckets and the communicator's started (overlapped) allreduces,
// nccl-tests style: element i on rank r is (r + 1) * (i % 251), so the
// average is sum_r (r + 1) * (i % 251) / size, exact in float32 in any order,
// and the checks compare bits. The ranges are marked ready the way backward
// reports them (from the end of the buffer toward its start, in uneven
// pieces), for counts from 1 element to 64 MiB of float32, including counts
// that neither the rank count nor the bucket size divides.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "comm/bfloat16.h"
#include "comm/gradient_buckets.h"
#include "comm/mpi_communicator.h"
#include "tests/distributed/mpi_test_main.h"

namespace {
using mone::BucketOptions;
using mone::ElementType;
using mone::GradientBuckets;
using mone::ReduceOp;

mone::MpiCommunicator& comm() { return mone::testing::communicator(); }

constexpr size_t kPeriod = 251;
constexpr size_t kBfloat16Period = 13;  // bf16-exact inputs and sums (test_communicator.cpp)

float rank_weight_sum(int size) { return static_cast<float>(size * (size + 1) / 2); }

int64_t first_mismatch(const std::vector<float>& actual, size_t period) {
  const float weight = rank_weight_sum(comm().size()), scale = 1.0f / static_cast<float>(comm().size());
  for (size_t i = 0; i < actual.size(); ++i)
    if (actual[i] != weight * static_cast<float>(i % period) * scale) return static_cast<int64_t>(i);
  return -1;
}

std::vector<float> pattern(size_t count, size_t period) {
  std::vector<float> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>((comm().rank() + 1) * (i % period));
  return data;
}

// Marks [0, count) ready from the end in pieces of growing size, as backward does.
void mark_like_backward(GradientBuckets& buckets, int64_t count) {
  int64_t piece = 1;
  for (int64_t end = count; end > 0; piece = piece * 3 + 1) {
    const int64_t begin = std::max<int64_t>(0, end - piece);
    buckets.mark_ready(begin, end);
    end = begin;
  }
}

class BucketTest : public ::testing::TestWithParam<size_t> {
 protected:
  size_t count() const { return GetParam(); }
  // About five buckets per buffer whatever its size, plus the small first one.
  BucketOptions options(ElementType wire) const {
    BucketOptions o;
    o.bucket_bytes = std::max<int64_t>(4, static_cast<int64_t>(count()) * 4 / 5);
    o.first_bucket_bytes = std::max<int64_t>(4, o.bucket_bytes / 16);
    o.wire = wire;
    return o;
  }
};

TEST_P(BucketTest, AveragesFloat32) {
  std::vector<float> grads = pattern(count(), kPeriod);
  GradientBuckets buckets(comm(), grads.data(), static_cast<int64_t>(count()), options(ElementType::float32));
  buckets.begin("test step 1");
  mark_like_backward(buckets, static_cast<int64_t>(count()));
  buckets.finish();
  EXPECT_EQ(first_mismatch(grads, kPeriod), -1);

  // A second synchronisation over the same buckets (the next step); refilled
  // in place, since the buckets hold the buffer's address.
  const std::vector<float> again = pattern(count(), kPeriod);
  std::copy(again.begin(), again.end(), grads.begin());
  buckets.begin("test step 2");
  mark_like_backward(buckets, static_cast<int64_t>(count()));
  buckets.finish();
  EXPECT_EQ(first_mismatch(grads, kPeriod), -1);
}

TEST_P(BucketTest, AveragesOverBfloat16Wire) {
  std::vector<float> grads = pattern(count(), kBfloat16Period);
  GradientBuckets buckets(comm(), grads.data(), static_cast<int64_t>(count()), options(ElementType::bfloat16));
  buckets.begin("test step 1");
  mark_like_backward(buckets, static_cast<int64_t>(count()));
  buckets.finish();
  // The bf16 average of exact inputs: the float32 average rounded once to bf16.
  const float weight = rank_weight_sum(comm().size()), scale = 1.0f / static_cast<float>(comm().size());
  int64_t mismatch = -1;
  for (size_t i = 0; i < grads.size() && mismatch < 0; ++i) {
    const float expected =
        mone::bfloat16_to_float(mone::float_to_bfloat16(weight * static_cast<float>(i % kBfloat16Period) * scale));
    if (grads[i] != expected) mismatch = static_cast<int64_t>(i);
  }
  EXPECT_EQ(mismatch, -1);
}

TEST_P(BucketTest, StartedAllreducesCompleteInOrderBeforeABlockingCall) {
  // Three buffers started back to back, then a blocking broadcast, then the wait.
  std::vector<std::vector<float>> buffers(3, pattern(count(), kPeriod));
  for (std::vector<float>& buffer : buffers)
    comm().start_allreduce(buffer.data(), count(), ElementType::float32, ReduceOp::average, "test started");
  float token = comm().rank() == 0 ? 42.0f : 0.0f;
  comm().broadcast(&token, 1, ElementType::float32, 0, "test broadcast behind started allreduces");
  comm().wait_started();
  EXPECT_EQ(token, 42.0f);
  for (const std::vector<float>& buffer : buffers) EXPECT_EQ(first_mismatch(buffer, kPeriod), -1);
}

INSTANTIATE_TEST_SUITE_P(Counts, BucketTest,
                         ::testing::Values(size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{1000},
                                           (size_t{1} << 20) + 3, size_t{16} << 20));

TEST(GradientBucketLayout, SmallFirstBucketAtTheEndThenFixedSizes) {
  BucketOptions o;
  o.first_bucket_bytes = 40;  // 10 floats
  o.bucket_bytes = 100;       // 25 floats
  std::vector<float> grads(63);
  GradientBuckets buckets(comm(), grads.data(), 63, o);
  const auto& b = buckets.buckets();
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].begin, 53);
  EXPECT_EQ(b[0].end, 63);
  EXPECT_EQ(b[1].begin, 28);
  EXPECT_EQ(b[2].begin, 3);
  EXPECT_EQ(b[3].begin, 0);
  EXPECT_EQ(b[3].end, 3);
}

TEST(GradientBucketLayout, FinishWithoutAllReadyThrows) {
  std::vector<float> grads(100, 1.0f);
  BucketOptions o;
  o.first_bucket_bytes = 40;
  o.bucket_bytes = 200;
  GradientBuckets buckets(comm(), grads.data(), 100, o);
  buckets.begin("test step 1");
  buckets.mark_ready(50, 100);  // buckets [90,100) and [40,90) not complete: only the first starts
  EXPECT_THROW(buckets.finish(), std::logic_error);
  comm().wait_started();
}

}  // namespace
