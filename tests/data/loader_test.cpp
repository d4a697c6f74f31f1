// The Loader end to end on small synthetic datasets: what each rank gets,
// resuming, evaluation coverage, normalisation and augmentation.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>

#include "data/augment.h"
#include "data/sample_order.h"
#include "data/shard.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

struct Delivered {
  int64_t sample = 0;
  int32_t label = 0;
  std::vector<float> image;
};

class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SyntheticOptions options;
    options.shape = {6, 5, 3};
    options.classes = 7;
    options.train_count = 103;
    options.test_count = 23;
    options.seed = 5;
    testing::write_synthetic(dir_->path(), options, 17);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static LoaderOptions options(const std::string& split, LoaderMode mode, int64_t world, int64_t rank,
                               int64_t global_batch) {
    LoaderOptions o;
    o.dir = dir_->path();
    o.split = split;
    o.mode = mode;
    o.world = world;
    o.rank = rank;
    o.global_batch = global_batch;
    o.seed = 99;
    o.crop_padding = 2;
    o.prefetch_workers = 2;
    return o;
  }

  // Runs all `world` ranks for `steps` global batches from `start` and puts
  // what they delivered back at global stream positions.
  static std::map<int64_t, Delivered> run_ranks(const std::string& split, LoaderMode mode, int64_t world,
                                                int64_t global_batch, int64_t start, int64_t steps,
                                                int64_t* end_position = nullptr) {
    std::vector<std::unique_ptr<Loader>> loaders;
    for (int64_t rank = 0; rank < world; ++rank) {
      loaders.push_back(std::make_unique<Loader>(options(split, mode, world, rank, global_batch), start));
    }
    std::map<int64_t, Delivered> delivered;
    Batch batch;
    for (int64_t step = 0; step < steps; ++step) {
      for (int64_t rank = 0; rank < world; ++rank) {
        if (!loaders[rank]->next(batch)) return delivered;
        EXPECT_EQ(batch.position, start + step * global_batch);
        const int64_t pixels = batch.shape.pixels();
        for (int64_t j = 0; j < batch.count; ++j) {
          const int64_t position = rank_position(batch.position, rank, world, j);
          EXPECT_EQ(delivered.count(position), 0u) << "position " << position << " delivered twice";
          delivered[position] = {batch.samples[j], batch.labels[j],
                                 std::vector<float>(batch.images.data() + j * pixels,
                                                    batch.images.data() + (j + 1) * pixels)};
        }
      }
      if (end_position != nullptr) *end_position = loaders[0]->position();
    }
    return delivered;
  }

  static testing::TempDir* dir_;
};

testing::TempDir* LoaderTest::dir_ = nullptr;

TEST_F(LoaderTest, RanksTogetherDeliverEachGlobalBatchOfTheStream) {
  SampleOrder order(103, 99, true);
  for (int64_t world = 1; world <= 4; ++world) {
    const int64_t global_batch = 12;
    int64_t end = 0;
    const auto delivered = run_ranks("train", LoaderMode::train, world, global_batch, 0, 10, &end);
    ASSERT_EQ(delivered.size(), 120u) << "world " << world;
    EXPECT_EQ(end, 120);
    std::set<int64_t> first_epoch;
    for (const auto& [position, item] : delivered) {
      EXPECT_EQ(item.sample, order.at(position).sample) << "world " << world << " position " << position;
      if (position < 103) first_epoch.insert(item.sample);
    }
    EXPECT_EQ(first_epoch.size(), 103u) << "a sample was repeated within the first epoch";
  }
}

TEST_F(LoaderTest, ResumingWithAnotherRankCountContinuesTheSameSequence) {
  const int64_t global_batch = 12, steps = 20;
  const auto uninterrupted = run_ranks("train", LoaderMode::train, 2, global_batch, 0, steps);
  int64_t stopped_at = 0;
  const auto before = run_ranks("train", LoaderMode::train, 2, global_batch, 0, 7, &stopped_at);
  ASSERT_EQ(stopped_at, 84);
  for (int64_t world : {1, 3, 4}) {
    const auto after = run_ranks("train", LoaderMode::train, world, global_batch, stopped_at, steps - 7);
    std::map<int64_t, Delivered> resumed = before;
    resumed.insert(after.begin(), after.end());
    ASSERT_EQ(resumed.size(), uninterrupted.size()) << "world " << world;
    for (const auto& [position, item] : uninterrupted) {
      const Delivered& other = resumed.at(position);
      EXPECT_EQ(other.sample, item.sample) << "world " << world << " position " << position;
      EXPECT_EQ(other.label, item.label);
      // Augmentation depends on (seed, epoch, sample) only, not on the rank count.
      EXPECT_EQ(other.image, item.image) << "world " << world << " position " << position;
    }
  }
}

// Reads the stored uint8 image of a split sample through ShardReader.
std::vector<uint8_t> stored_image(const Dataset& dataset, int64_t sample, int32_t* label) {
  for (const ShardEntry& entry : dataset.shards) {
    if (sample < entry.samples) {
      ShardReader reader(dataset.dir / entry.file, {dataset.split, dataset.shape, dataset.classes, entry, true});
      std::vector<uint8_t> image(static_cast<size_t>(dataset.shape.pixels()));
      reader.read_images(sample, 1, image.data());
      *label = reader.labels()[sample];
      return image;
    }
    sample -= entry.samples;
  }
  ADD_FAILURE() << "sample out of range";
  return {};
}

TEST_F(LoaderTest, EvaluationSeesEverySampleOnceNormalisedAndUnaugmented) {
  const Dataset dataset = Dataset::open(dir_->path(), "test");
  ASSERT_EQ(dataset.samples, 23);
  for (int64_t world = 1; world <= 4; ++world) {
    const int64_t global_batch = 2 * world;  // 23 is never a multiple: the last batch is partial
    int64_t end = 0;
    const auto delivered = run_ranks("test", LoaderMode::eval, world, global_batch, 0, 100, &end);
    EXPECT_EQ(end, 23) << "world " << world;
    ASSERT_EQ(delivered.size(), 23u) << "world " << world;
    for (const auto& [position, item] : delivered) {
      EXPECT_EQ(item.sample, position);  // evaluation keeps the stored order
      int32_t label = -1;
      const std::vector<uint8_t> raw = stored_image(dataset, item.sample, &label);
      EXPECT_EQ(item.label, label);
      for (size_t i = 0; i < raw.size(); ++i) {
        const size_t c = i % 3;
        const float expected = static_cast<float>((raw[i] / 255.0 - dataset.mean[c]) / dataset.std[c]);
        ASSERT_NEAR(item.image[i], expected, 1e-5f) << "sample " << item.sample << " value " << i;
      }
    }
  }
}

TEST_F(LoaderTest, EvaluationLastBatchIsPartialThenTheLoaderEnds) {
  Loader loader(options("test", LoaderMode::eval, 1, 0, 10));
  Batch batch;
  std::vector<int64_t> counts;
  while (loader.next(batch)) counts.push_back(batch.count);
  EXPECT_EQ(counts, (std::vector<int64_t>{10, 10, 3}));
  EXPECT_EQ(batch.labels.size(), 3u);
  const int64_t pixels = batch.shape.pixels();
  for (int64_t i = 3 * pixels; i < 10 * pixels; ++i) ASSERT_EQ(batch.images.data()[i], 0.0f);
  EXPECT_EQ(loader.position(), 23);
  EXPECT_FALSE(loader.next(batch));
}

TEST_F(LoaderTest, TrainingBatchesAreReproducibleAndAugmented) {
  Batch first, second, plain;
  Loader a(options("train", LoaderMode::train, 1, 0, 16)), b(options("train", LoaderMode::train, 1, 0, 16));
  LoaderOptions no_augment = options("train", LoaderMode::train, 1, 0, 16);
  no_augment.crop_padding = 0;
  no_augment.flip = false;
  Loader c(no_augment);
  ASSERT_TRUE(a.next(first) && b.next(second) && c.next(plain));
  ASSERT_EQ(first.samples, plain.samples);
  const size_t values = static_cast<size_t>(16 * first.shape.pixels());
  EXPECT_TRUE(std::equal(first.images.data(), first.images.data() + values, second.images.data()));
  EXPECT_FALSE(std::equal(first.images.data(), first.images.data() + values, plain.images.data()));
}

// The transform's output must be one of the (2p+1)^2 crops, mirrored or not,
// of the zero-padded image; over many samples every variant occurs.
TEST(ImageTransform, OutputIsACropOrMirroredCropOfThePaddedImage) {
  const ImageShape shape{3, 4, 2};
  std::vector<uint8_t> image(static_cast<size_t>(shape.pixels()));
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(10 + 7 * i);
  const std::vector<double> mean{0.1, 0.2}, std{0.5, 0.25};
  for (const bool flip : {true, false}) {
    const ImageTransform transform(shape, mean, std, {true, 1, flip}, 3);
    std::set<std::pair<int, int>> seen_variants;  // (crop index, mirrored)
    for (int64_t sample = 0; sample < 400; ++sample) {
      std::vector<float> out(image.size());
      transform.apply(image.data(), 0, sample, out.data());
      int matched = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
          for (int mirrored = 0; mirrored < 2; ++mirrored) {
            bool same = true;
            for (int64_t y = 0; y < 3 && same; ++y)
              for (int64_t x = 0; x < 4 && same; ++x)
                for (int64_t c = 0; c < 2 && same; ++c) {
                  const int64_t sy = y + dy, sx = (mirrored ? 3 - x : x) + dx;
                  const int value = (sy < 0 || sy >= 3 || sx < 0 || sx >= 4) ? 0 : image[(sy * 4 + sx) * 2 + c];
                  const float expected = static_cast<float>((value / 255.0 - mean[c]) / std[c]);
                  same = std::abs(out[(y * 4 + x) * 2 + c] - expected) < 1e-6f;
                }
            if (same) {
              ++matched;
              seen_variants.insert({(dy + 1) * 3 + dx + 1, mirrored});
            }
          }
      ASSERT_GE(matched, 1) << "sample " << sample;
      std::vector<float> again(image.size());
      transform.apply(image.data(), 0, sample, again.data());
      ASSERT_EQ(out, again);
    }
    EXPECT_EQ(seen_variants.size(), flip ? 18u : 9u);
  }
}

// The batches' image memory comes from LoaderOptions::allocator (pinned
// memory for a GPU): every batch handed out was allocated by it, each
// allocation is released once, and the values are those of the default.
std::atomic<int> counted_allocations{0};
std::atomic<int> counted_releases{0};
float* counted_allocate(size_t floats) {
  ++counted_allocations;
  return aligned_host_allocator().allocate(floats);
}
void counted_release(float* memory) {
  if (memory) ++counted_releases;
  aligned_host_allocator().release(memory);
}
const HostAllocator kCountingAllocator{counted_allocate, counted_release, "counting"};

TEST_F(LoaderTest, BatchesComeFromTheAllocatorAsked) {
  counted_allocations = 0;
  counted_releases = 0;
  LoaderOptions counted = options("test", LoaderMode::eval, 1, 0, 10);
  counted.allocator = &kCountingAllocator;
  std::vector<std::vector<float>> with_counting, with_default;
  {
    Loader loader(counted);
    Batch batch;
    while (loader.next(batch)) {
      EXPECT_EQ(batch.images.allocator(), &kCountingAllocator);
      with_counting.emplace_back(batch.images.data(), batch.images.data() + batch.images.size());
    }
  }
  EXPECT_GE(counted_allocations.load(), 1);
  EXPECT_EQ(counted_releases.load(), counted_allocations.load()) << "every batch buffer is released once";
  Loader loader(options("test", LoaderMode::eval, 1, 0, 10));
  Batch batch;
  while (loader.next(batch)) {
    EXPECT_EQ(batch.images.allocator(), &aligned_host_allocator());
    with_default.emplace_back(batch.images.data(), batch.images.data() + batch.images.size());
  }
  EXPECT_EQ(with_counting, with_default);
}

}  // namespace
}  // namespace mone
