#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "data/augment.h"
#include "data/error.h"
#include "data/sample_order.h"
#include "data/split_reader.h"
#include "data/worker_pool.h"

namespace mone {

namespace {

void require(bool condition, const std::string& message) {
  if (!condition) throw DataError("loader option " + message);
}

}  // namespace

Loader::Loader(LoaderOptions options, int64_t start_position)
    : options_(std::move(options)), position_(start_position) {
  require(options_.world >= 1, "world = " + std::to_string(options_.world) + " must be >= 1");
  require(options_.rank >= 0 && options_.rank < options_.world,
          "rank = " + std::to_string(options_.rank) + " must be in [0, world)");
  require((options_.global_batch > 0) != (options_.batch_per_rank > 0),
          "global_batch / batch_per_rank: set exactly one to a positive value");
  if (options_.global_batch > 0) {
    require(options_.global_batch % options_.world == 0,
            "global_batch = " + std::to_string(options_.global_batch) +
                " must be a multiple of world = " + std::to_string(options_.world));
    batch_per_rank_ = options_.global_batch / options_.world;
  } else {
    batch_per_rank_ = options_.batch_per_rank;
  }
  require(options_.prefetch_workers >= 1, "prefetch_workers must be >= 1");
  require(options_.ring_size >= 1, "ring_size must be >= 1");
  require(options_.crop_padding >= 0, "crop_padding must be >= 0");
  require(start_position >= 0, "start position must be >= 0");

  dataset_ = Dataset::open(options_.dir, options_.split);
  require(options_.image_size >= 0, "image_size must be >= 0");
  if (dataset_.storage == Storage::encoded && options_.image_size > 0) {
    dataset_.shape.height = dataset_.shape.width = options_.image_size;
  }
  require(dataset_.storage == Storage::encoded || options_.image_size == 0 ||
              options_.image_size == dataset_.shape.height,
          "image_size = " + std::to_string(options_.image_size) + ": " + options_.dir.string() +
              " holds raw " + dataset_.shape.to_string() + " images; only encoded datasets are resized");
  if (dataset_.samples == 0) throw DataError(options_.dir.string() + ": split '" + options_.split + "' is empty");
  if (options_.mode == LoaderMode::eval) {
    require(start_position <= dataset_.samples,
            "start position " + std::to_string(start_position) + " is past the end of the split");
  }
  ring_.resize(static_cast<size_t>(options_.ring_size));
  producer_ = std::thread(&Loader::produce, this, start_position);
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  producer_.join();
}

bool Loader::next(Batch& batch) {
  std::unique_lock<std::mutex> held(mutex_);
  if (ended_) return false;
  changed_.wait(held, [&] { return filled_ > 0 || error_; });
  // Batches prepared before a failure are still delivered; the error comes
  // when the consumer reaches it.
  if (filled_ == 0) std::rethrow_exception(error_);
  Slot& slot = ring_[head_];
  if (slot.end) {
    ended_ = true;
    return false;
  }
  std::swap(batch, slot.batch);  // the caller's old buffers go back into the ring
  position_ = slot.position_after;
  head_ = (head_ + 1) % ring_.size();
  --filled_;
  held.unlock();
  changed_.notify_all();
  return true;
}

void Loader::produce(int64_t start_position) {
  try {
    // All HDF5 work of this loader happens on this thread.
    const SplitReader reader(dataset_, options_.verify_checksums);
    const bool train = options_.mode == LoaderMode::train;
    SampleOrder order(dataset_.samples, options_.seed, train);
    const bool encoded = dataset_.storage == Storage::encoded;
    const ImageTransform transform(dataset_.shape, dataset_.mean, dataset_.std,
                                   {train, options_.crop_padding, options_.flip}, options_.seed);
    const EncodedImageTransform encoded_transform(
        dataset_.shape, dataset_.mean, dataset_.std,
        {train, options_.flip, options_.random_resized_crop, options_.eval_crop_fraction, options_.dct_downscale},
        options_.seed);
    std::vector<SplitReader::EncodedSample> files(static_cast<size_t>(encoded ? batch_per_rank_ : 0));
    WorkerPool pool(options_.prefetch_workers);
    const int64_t pixels = dataset_.shape.pixels();
    std::vector<uint8_t> raw(static_cast<size_t>(encoded ? 0 : batch_per_rank_ * pixels));
    std::vector<int64_t> epochs(static_cast<size_t>(batch_per_rank_));
    std::vector<size_t> read_order(static_cast<size_t>(batch_per_rank_));
    size_t tail = 0;

    for (int64_t first = start_position;; first += global_batch()) {
      {
        std::unique_lock<std::mutex> held(mutex_);
        changed_.wait(held, [&] { return stopping_ || filled_ < ring_.size(); });
        if (stopping_) return;
      }
      Slot& slot = ring_[tail];
      if (!train && first >= dataset_.samples) {
        slot.end = true;
      } else {
        Batch& batch = slot.batch;
        batch.shape = dataset_.shape;
        // A buffer handed back by the caller is reused when it has the size and
        // the memory kind asked for.
        if (batch.images.size() != static_cast<size_t>(batch_per_rank_ * pixels) ||
            batch.images.allocator() != options_.allocator) {
          batch.images = HostBuffer(static_cast<size_t>(batch_per_rank_ * pixels), *options_.allocator);
        }
        batch.samples.clear();
        for (int64_t j = 0; j < batch_per_rank_; ++j) {
          const int64_t position = rank_position(first, options_.rank, options_.world, j);
          if (!train && position >= dataset_.samples) break;
          const SampleRef ref = order.at(position);
          batch.samples.push_back(ref.sample);
          epochs[static_cast<size_t>(j)] = ref.epoch;
        }
        batch.count = static_cast<int64_t>(batch.samples.size());
        batch.epoch = order.at(first).epoch;
        batch.position = first;
        batch.labels.resize(static_cast<size_t>(batch.count));

        // Reading in sample order keeps consecutive reads in the same chunks.
        read_order.resize(static_cast<size_t>(batch.count));
        std::iota(read_order.begin(), read_order.end(), size_t{0});
        std::sort(read_order.begin(), read_order.end(),
                  [&](size_t a, size_t b) { return batch.samples[a] < batch.samples[b]; });
        for (const size_t j : read_order) {
          batch.labels[j] = encoded ? reader.read_encoded(batch.samples[j], files[j])
                                    : reader.read(batch.samples[j], raw.data() + j * static_cast<size_t>(pixels));
        }
        pool.parallel_for(batch.count, [&](int64_t begin, int64_t end) {
          for (int64_t j = begin; j < end; ++j) {
            const auto at = static_cast<size_t>(j);
            float* out = batch.images.data() + j * pixels;
            if (!encoded) {
              transform.apply(raw.data() + j * pixels, epochs[at], batch.samples[at], out);
              continue;
            }
            try {  // decoding happens here, in the workers
              encoded_transform.apply(files[at].bytes, files[at].height, files[at].width, epochs[at],
                                      batch.samples[at], out);
            } catch (const DataError& error) {
              throw DataError(options_.dir.string() + ": " + options_.split + " sample " +
                              std::to_string(batch.samples[at]) + ": " + error.what());
            }
          }
        });
        std::fill(batch.images.data() + batch.count * pixels,
                  batch.images.data() + batch_per_rank_ * pixels, 0.0f);
        slot.position_after = train ? first + global_batch()
                                    : std::min(first + global_batch(), dataset_.samples);
      }
      {
        std::lock_guard<std::mutex> guard(mutex_);
        ++filled_;
      }
      changed_.notify_all();
      if (slot.end) return;
      tail = (tail + 1) % ring_.size();
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      error_ = std::current_exception();
    }
    changed_.notify_all();
  }
}

}  // namespace mone
