// The training/evaluation input pipeline of one rank.
//
// Which samples a rank gets is fixed by the sample-sequence contract in
// data/sample_order.h; the Loader adds reading (HDF5, on its own prefetch
// thread), augmentation (a small pool) and a ring of ready batches.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/encoded_transform.h"
#include "data/host_buffer.h"

namespace mone {

enum class LoaderMode {
  train,  // shuffled every epoch, augmented, endless
  eval,   // in order, not augmented, one pass; the last batch may be partial
};

struct LoaderOptions {
  std::filesystem::path dir;
  std::string split = "train";
  // Set exactly one: the global batch (a multiple of world) or the per-rank batch.
  int64_t global_batch = 0;
  int64_t batch_per_rank = 0;
  int64_t rank = 0;
  int64_t world = 1;
  uint64_t seed = 0;
  LoaderMode mode = LoaderMode::train;
  int64_t crop_padding = 4;  // training on raw images only
  bool flip = true;          // training only
  // Encoded datasets (format version 2): the S of the S x S images (0: the
  // manifest's size), RandomResizedCrop's ranges for training, the centre
  // crop's fraction for evaluation, and decoding JPEGs at a reduced DCT scale
  // where the crop allows.
  int64_t image_size = 0;
  RandomResizedCropOptions random_resized_crop;
  double eval_crop_fraction = 0.875;
  bool dct_downscale = true;
  int prefetch_workers = 1;  // threads preparing batches (1: the reader thread alone)
  int ring_size = 3;         // batches prepared ahead
  bool verify_checksums = true;
  // Where the batches' image memory comes from (pinned for a GPU).
  const HostAllocator* allocator = &aligned_host_allocator();
};

struct Batch {
  ImageShape shape;
  HostBuffer images;             // float32 [batch_per_rank, H, W, C]; rows >= count are zero
  std::vector<int32_t> labels;   // [count]
  std::vector<int64_t> samples;  // [count] indices into the split, for tracing
  int64_t count = 0;             // valid samples (fewer only in evaluation's last batch)
  int64_t epoch = 0;             // the epoch of the global batch's first sample
  int64_t position = 0;          // stream position of the global batch's first sample
};

class Loader {
 public:
  // Starts after `start_position` samples of the global stream have been
  // consumed (0 for a fresh run; a checkpoint's position() to resume).
  explicit Loader(LoaderOptions options, int64_t start_position = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Fills `batch` (swapping buffers, no copy). Returns false when an
  // evaluation pass is complete; training never ends. Rethrows any error of
  // the prefetch thread (a DataError naming the bad file).
  bool next(Batch& batch);
  // Samples consumed globally (by all ranks) up to the last batch returned.
  int64_t position() const { return position_; }

  // Its shape is the batches' image shape (for encoded data: image_size).
  const Dataset& dataset() const { return dataset_; }
  int64_t batch_per_rank() const { return batch_per_rank_; }
  int64_t global_batch() const { return batch_per_rank_ * options_.world; }

 private:
  struct Slot {
    Batch batch;
    int64_t position_after = 0;
    bool end = false;  // evaluation is over; carries no batch
  };

  void produce(int64_t start_position);

  LoaderOptions options_;
  Dataset dataset_;
  int64_t batch_per_rank_ = 0;
  int64_t position_ = 0;

  std::vector<Slot> ring_;
  size_t head_ = 0;    // next slot the consumer takes
  size_t filled_ = 0;  // ready slots from head_ on
  bool stopping_ = false;
  bool ended_ = false;
  std::exception_ptr error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread producer_;
};

}  // namespace mone
