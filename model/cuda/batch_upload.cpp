#include "model/cuda/batch_upload.h"

#include <stdexcept>
#include <string>

#include "model/cuda/check.h"
#include "model/cuda/ops.h"

namespace mone::cuda {

template <class T>
BatchUpload<T>::BatchUpload(const ModelConfig& config, int64_t max_batch, const DeviceContext& context)
    : context_(context),
      pixels_per_image_(config.image_height * config.image_width * config.channels),
      max_batch_(max_batch),
      images_(max_batch * pixels_per_image_ * sizeof(T), "batch images"),
      labels_(max_batch * sizeof(int32_t), "batch labels") {
  MONE_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  for (Slot& slot : slots_) {
    MONE_CUDA_CHECK(cudaMallocHost(&slot.host_images, max_batch * pixels_per_image_ * sizeof(float)));
    MONE_CUDA_CHECK(cudaMallocHost(&slot.host_labels, max_batch * sizeof(int32_t)));
    slot.images = DeviceBuffer(max_batch * pixels_per_image_ * sizeof(float), "batch staging images");
    slot.labels = DeviceBuffer(max_batch * sizeof(int32_t), "batch staging labels");
    MONE_CUDA_CHECK(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming));
    MONE_CUDA_CHECK(cudaEventCreateWithFlags(&slot.consumed, cudaEventDisableTiming));
  }
}

template <class T>
BatchUpload<T>::~BatchUpload() {
  for (Slot& slot : slots_) {
    if (slot.copied) cudaEventSynchronize(slot.copied);  // no copy may read freed pinned memory
    if (slot.copied) cudaEventDestroy(slot.copied);
    if (slot.consumed) cudaEventDestroy(slot.consumed);
    if (slot.host_images) cudaFreeHost(slot.host_images);
    if (slot.host_labels) cudaFreeHost(slot.host_labels);
  }
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
}

template <class T>
float* BatchUpload<T>::host_images() {
  MONE_CUDA_CHECK(cudaEventSynchronize(slots_[next_].copied));  // an unrecorded event is complete
  return slots_[next_].host_images;
}

template <class T>
int32_t* BatchUpload<T>::host_labels() {
  MONE_CUDA_CHECK(cudaEventSynchronize(slots_[next_].copied));
  return slots_[next_].host_labels;
}

template <class T>
void BatchUpload<T>::upload(int64_t batch) {
  enqueue(slots_[next_].host_images, batch);
}

template <class T>
void BatchUpload<T>::upload_from(const float* images, int64_t batch) {
  MONE_CUDA_CHECK(cudaEventSynchronize(enqueue(images, batch).copied));
}

template <class T>
typename BatchUpload<T>::Slot& BatchUpload<T>::enqueue(const float* images, int64_t batch) {
  if (batch > max_batch_)
    throw std::invalid_argument("BatchUpload: batch " + std::to_string(batch) + " exceeds max_batch " +
                                std::to_string(max_batch_));
  Slot& slot = slots_[next_];
  const size_t image_bytes = batch * pixels_per_image_ * sizeof(float), label_bytes = batch * sizeof(int32_t);
  // The device staging buffer may still be read by the conversion of the
  // batch two uploads ago.
  MONE_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, slot.consumed, 0));
  MONE_CUDA_CHECK(cudaMemcpyAsync(slot.images.data(), images, image_bytes, cudaMemcpyHostToDevice, copy_stream_));
  MONE_CUDA_CHECK(cudaMemcpyAsync(slot.labels.data(), slot.host_labels, label_bytes, cudaMemcpyHostToDevice,
                                  copy_stream_));
  MONE_CUDA_CHECK(cudaEventRecord(slot.copied, copy_stream_));
  MONE_CUDA_CHECK(cudaStreamWaitEvent(context_.stream(), slot.copied, 0));
  convert_from_float(slot.images.template as<float>(), batch * pixels_per_image_, images_.as<T>(), context_);
  MONE_CUDA_CHECK(cudaMemcpyAsync(labels_.data(), slot.labels.data(), label_bytes, cudaMemcpyDeviceToDevice,
                                  context_.stream()));
  MONE_CUDA_CHECK(cudaEventRecord(slot.consumed, context_.stream()));
  next_ = 1 - next_;
  return slot;
}

template class BatchUpload<float>;
template class BatchUpload<bf16>;

}  // namespace mone::cuda
