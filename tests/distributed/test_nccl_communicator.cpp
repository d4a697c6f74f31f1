// NcclCommunicator's collectives on device buffers, with exactly predictable
// data as in test_communicator.cpp: small integers, so sums are exact in any
// order and the checks compare values exactly. Each rank uses the GPU of its
// local rank; with fewer visible GPUs than local ranks every test skips.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/bfloat16.h"
#include "comm/nccl_communicator.h"
#include "tests/common/gpu_skip.h"
#include "tests/distributed/mpi_test_main.h"

namespace {
using mone::ElementType;
using mone::ReduceOp;

mone::NcclCommunicator& comm() {
  static std::unique_ptr<mone::NcclCommunicator> communicator = [] {
    cudaSetDevice(mone::testing::world().local_rank());
    return std::make_unique<mone::NcclCommunicator>(mone::testing::world(), std::chrono::seconds(60));
  }();
  return *communicator;
}

template <class E>
std::vector<E> round_trip(const std::vector<E>& host, const std::function<void(void*)>& collective, size_t out_count) {
  void* device = nullptr;
  const size_t bytes = std::max(host.size(), out_count) * sizeof(E);
  EXPECT_EQ(cudaMalloc(&device, bytes), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(device, host.data(), host.size() * sizeof(E), cudaMemcpyHostToDevice), cudaSuccess);
  collective(device);
  std::vector<E> out(out_count);
  EXPECT_EQ(cudaMemcpy(out.data(), device, out_count * sizeof(E), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(device);
  return out;
}

// A GPU for each rank of this machine: the same answer on every rank of a
// machine, so all its ranks skip together.
#define MONE_SKIP_WITHOUT_A_GPU_PER_RANK() MONE_SKIP_WITHOUT_GPUS(mone::testing::world().local_size())

TEST(NcclCommunicator, AllreduceSumAndAverageInFloat32AndBfloat16) {
  MONE_SKIP_WITHOUT_A_GPU_PER_RANK();
  const int rank = comm().rank(), size = comm().size();
  const size_t count = 1003;
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = static_cast<float>((rank + 1) * (i % 7));
  const float weight = static_cast<float>(size * (size + 1) / 2);
  auto allreduce = [&](ElementType type, ReduceOp op) {
    return [=](void* d) { comm().allreduce(d, count, type, op, "test"); };
  };
  const auto sum = round_trip<float>(values, allreduce(ElementType::float32, ReduceOp::sum), count);
  const auto avg = round_trip<float>(values, allreduce(ElementType::float32, ReduceOp::average), count);
  std::vector<uint16_t> halves(count);
  for (size_t i = 0; i < count; ++i) halves[i] = mone::float_to_bfloat16(values[i]);
  const auto bf_sum = round_trip<uint16_t>(halves, allreduce(ElementType::bfloat16, ReduceOp::sum), count);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(sum[i], weight * (i % 7)) << "at " << i;
    ASSERT_FLOAT_EQ(avg[i], weight * (i % 7) / size) << "at " << i;
    ASSERT_EQ(mone::bfloat16_to_float(bf_sum[i]), weight * (i % 7)) << "at " << i;
  }
}

TEST(NcclCommunicator, BroadcastAllgatherBarrier) {
  MONE_SKIP_WITHOUT_A_GPU_PER_RANK();
  const int rank = comm().rank(), size = comm().size();
  const size_t count = 257;
  std::vector<float> mine(count);
  for (size_t i = 0; i < count; ++i) mine[i] = static_cast<float>(rank * 1000 + i);
  const int root = size - 1;
  const auto broadcast = round_trip<float>(
      mine, [&](void* d) { comm().broadcast(d, count, ElementType::float32, root, "test"); }, count);
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(broadcast[i], static_cast<float>(root * 1000 + i));
  const auto gathered = round_trip<float>(mine, [&](void* d) {
    void* receive = nullptr;
    ASSERT_EQ(cudaMalloc(&receive, count * size * sizeof(float)), cudaSuccess);
    comm().allgather(d, receive, count, ElementType::float32, "test");
    std::vector<float> host(count * size);
    ASSERT_EQ(cudaMemcpy(host.data(), receive, host.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (int r = 0; r < size; ++r)
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(host[r * count + i], static_cast<float>(r * 1000 + i));
    cudaFree(receive);
  }, count);
  comm().barrier("test");
}

// Overlap as the trainer uses it: each buffer is produced on the producer
// stream and its allreduce started at once, with the producer's work still
// pending (a host function sleeps on the stream before each copy), then one
// wait for all. Every result must be the full sum of what was copied in, so
// no allreduce may have run before its buffer was written.
void CUDART_CB hold_the_stream(void*) { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

TEST(NcclCommunicator, StartedAllreducesFollowTheirProducerAndFinishByTheWait) {
  MONE_SKIP_WITHOUT_A_GPU_PER_RANK();
  const int rank = comm().rank(), size = comm().size();
  cudaStream_t producer = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking), cudaSuccess);
  comm().set_producer_stream(producer);
  constexpr int kBuffers = 4;
  const size_t count = 1 << 20;
  float* host = nullptr;  // pinned, one slice per buffer: the copies are truly asynchronous
  ASSERT_EQ(cudaMallocHost(&host, kBuffers * count * sizeof(float)), cudaSuccess);
  std::vector<float*> device(kBuffers, nullptr);
  for (int b = 0; b < kBuffers; ++b) {
    float* slice = host + b * count;
    for (size_t i = 0; i < count; ++i) slice[i] = static_cast<float>((rank + 1) * (b + 1) + i % 5);
    ASSERT_EQ(cudaMalloc(&device[b], count * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemsetAsync(device[b], 0xff, count * sizeof(float), producer), cudaSuccess);  // NaN
    ASSERT_EQ(cudaLaunchHostFunc(producer, hold_the_stream, nullptr), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(device[b], slice, count * sizeof(float), cudaMemcpyHostToDevice, producer),
              cudaSuccess);
    comm().start_allreduce(device[b], count, ElementType::float32, ReduceOp::sum, "bucket " + std::to_string(b));
  }
  comm().wait_started();
  std::vector<float> result(count);
  const float ranks_sum = static_cast<float>(size * (size + 1) / 2);
  for (int b = 0; b < kBuffers; ++b) {
    ASSERT_EQ(cudaMemcpy(result.data(), device[b], count * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(result[i], ranks_sum * (b + 1) + size * static_cast<float>(i % 5)) << "buffer " << b << " at " << i;
    cudaFree(device[b]);
  }
  cudaFreeHost(host);
  comm().set_producer_stream(nullptr);
  cudaStreamDestroy(producer);
}

}  // namespace
