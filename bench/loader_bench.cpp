// Loader throughput: images/s one rank receives from Loader::next for small
// (28x28x1) and large (224x224x3) images, with training augmentation (random
// crop with padding 4, flip, normalisation), for 1 and 2 prefetch workers.
// The consumer does nothing else, so this is the loader's ceiling. Synthetic
// datasets are written to a temporary directory first (not timed), and the
// first batch (shard opening and checksum verification) is not timed.
//
// mone-bench-loader ENCODED_DIR RAW_DIR instead times one core (one prefetch
// worker) on an image folder converted both ways (bench/image_folder_bench.sh):
// decoding plus RandomResizedCrop to 224 and flip, with and without DCT
// downscaling, the evaluation transform, and the raw 224x224 shards.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "data/convert.h"
#include "data/loader.h"

namespace {

struct Case {
  mone::ImageShape shape;
  int64_t samples;
  int64_t shard_size;
  int64_t batch;
  int64_t timed_batches;
};

double images_per_second(const std::filesystem::path& dir, const Case& c, int workers) {
  mone::LoaderOptions options;
  options.dir = dir;
  options.split = "train";
  options.batch_per_rank = c.batch;
  options.seed = 1;
  options.crop_padding = 4;
  options.flip = true;
  options.prefetch_workers = workers;
  mone::Loader loader(options);
  mone::Batch batch;
  loader.next(batch);  // opens and verifies the shards
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < c.timed_batches; ++i) loader.next(batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(c.timed_batches * c.batch) / seconds;
}

struct FolderCase {
  const char* storage;
  const char* transform;
  int64_t size;
  bool train;
  bool dct;
};

double folder_images_per_second(const std::filesystem::path& dir, const FolderCase& c) {
  constexpr int64_t kBatch = 32, kTimedBatches = 40;
  mone::LoaderOptions options;
  options.dir = dir;
  options.split = "train";
  options.batch_per_rank = kBatch;
  options.seed = 1;
  options.mode = c.train ? mone::LoaderMode::train : mone::LoaderMode::eval;
  options.image_size = c.size;
  options.dct_downscale = c.dct;
  options.prefetch_workers = 1;
  options.ring_size = 1;  // the consumer waits for each batch: the time is the worker's
  mone::Loader loader(options);
  mone::Batch batch;
  loader.next(batch);
  int64_t images = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < kTimedBatches && loader.next(batch); ++i) images += batch.count;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(images) / seconds;
}

int image_folder_table(const std::filesystem::path& encoded, const std::filesystem::path& raw) {
  const FolderCase cases[] = {
      {"encoded", "RandomResizedCrop + flip", 224, true, false},
      {"encoded", "RandomResizedCrop + flip", 224, true, true},
      {"encoded", "resize S/0.875, centre crop", 224, false, false},
      {"encoded", "resize S/0.875, centre crop", 224, false, true},
      {"encoded", "RandomResizedCrop + flip", 112, true, false},
      {"encoded", "RandomResizedCrop + flip", 112, true, true},
      {"encoded", "resize S/0.875, centre crop", 112, false, false},
      {"encoded", "resize S/0.875, centre crop", 112, false, true},
      {"raw", "pad-4 crop + flip", 224, true, false},
      {"raw", "none (normalise)", 224, false, false},
  };
  std::printf("| storage | transform | S | DCT downscaling | images/s, 1 core | ms per image |\n");
  std::printf("|---|---|---|---|---|---|\n");
  try {
    for (const FolderCase& c : cases) {
      const bool is_raw = c.storage[0] == 'r';
      const double rate = folder_images_per_second(is_raw ? raw : encoded, c);
      std::printf("| %s | %s | %lld | %s | %.0f | %.2f |\n", c.storage, c.transform, static_cast<long long>(c.size),
                  is_raw ? "-" : c.dct ? "on" : "off", rate, 1000.0 / rate);
      std::fflush(stdout);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "loader_bench: error: %s\n", error.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3) return image_folder_table(argv[1], argv[2]);
  if (argc != 1) {
    std::fprintf(stderr, "usage: mone-bench-loader [ENCODED_DIR RAW_DIR]\n");
    return 2;
  }
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("mone-loader-bench-" + std::to_string(getpid()));
  const Case cases[] = {
      {{28, 28, 1}, 60000, 10000, 256, 400},
      {{224, 224, 3}, 2048, 512, 64, 60},
  };
  std::printf("| image | batch/rank | prefetch workers | images/s per rank | ms per batch |\n");
  std::printf("|---|---|---|---|---|\n");
  int status = 0;
  try {
    for (const Case& c : cases) {
      const std::filesystem::path dir = root / c.shape.to_string();
      mone::SyntheticOptions synthetic;
      synthetic.shape = c.shape;
      synthetic.train_count = c.samples;
      synthetic.test_count = 0;
      mone::ConvertOptions convert;
      convert.out = dir;
      convert.shard_size = c.shard_size;
      mone::convert(mone::make_synthetic(synthetic), convert);
      for (const int workers : {1, 2}) {
        const double rate = images_per_second(dir, c, workers);
        std::printf("| %s | %lld | %d | %.0f | %.2f |\n", c.shape.to_string().c_str(),
                    static_cast<long long>(c.batch), workers, rate, 1000.0 * c.batch / rate);
        std::fflush(stdout);
      }
      std::filesystem::remove_all(dir);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "loader_bench: error: %s\n", error.what());
    status = 1;
  }
  std::filesystem::remove_all(root);
  return status;
}
