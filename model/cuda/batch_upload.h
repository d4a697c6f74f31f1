// Batches from the host to the device without stalling the step. The host
// writes a batch into one of two pinned staging slots, or hands over pinned
// memory of its own (the loader's batch, upload_from); the copy runs on a
// copy stream while the compute stream is still busy with the previous step;
// the compute stream waits for the copy (an event), then converts the images
// to T into fixed device buffers. The fixed buffers are what a captured step
// graph (step_graph.h) reads, so the same graph serves every batch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "model/config.h"
#include "model/cuda/context.h"
#include "model/cuda/device_memory.h"

namespace mone::cuda {

template <class T>
class BatchUpload {
 public:
  BatchUpload(const ModelConfig& config, int64_t max_batch, const DeviceContext& context);
  ~BatchUpload();
  BatchUpload(const BatchUpload&) = delete;
  BatchUpload& operator=(const BatchUpload&) = delete;

  // Pinned host memory of the slot to fill next: [max_batch, H, W, C] images
  // and [max_batch] labels. Waits until that slot's previous copy is done.
  float* host_images();
  int32_t* host_labels();
  // Sends the `batch` images and labels just written: copy on the copy
  // stream, then (on the compute stream, after the copy) the conversion into
  // images() and labels(). Returns at once.
  void upload(int64_t batch);
  // The same with the images read from `images` (pinned memory the caller
  // owns, [batch, H, W, C]) instead of the slot's, and the labels written to
  // host_labels(). Returns once the images are copied, so the caller may
  // refill `images` at once; the conversion goes on on the compute stream.
  void upload_from(const float* images, int64_t batch);

  // The device batch the compute stream sees after the last upload.
  const T* images() const { return images_.as<T>(); }
  const int32_t* labels() const { return labels_.as<int32_t>(); }

 private:
  struct Slot {
    float* host_images = nullptr;     // pinned
    int32_t* host_labels = nullptr;   // pinned
    DeviceBuffer images;              // fp32, as copied
    DeviceBuffer labels;
    cudaEvent_t copied = nullptr;     // recorded on the copy stream
    cudaEvent_t consumed = nullptr;   // recorded on the compute stream after the conversion
  };
  // Enqueues the copy of `images` and the slot's labels, then the
  // conversion; returns the slot used.
  Slot& enqueue(const float* images, int64_t batch);

  const DeviceContext& context_;
  int64_t pixels_per_image_;
  int64_t max_batch_;
  cudaStream_t copy_stream_ = nullptr;
  Slot slots_[2];
  int next_ = 0;
  DeviceBuffer images_;
  DeviceBuffer labels_;
};

}  // namespace mone::cuda
