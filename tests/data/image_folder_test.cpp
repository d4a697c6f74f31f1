// Image folders (torchvision's ImageFolder layout) through the converter and
// the loader: decoding against PIL, the bad files, determinism, raw versus
// encoded storage, RandomResizedCrop against torchvision's rule, resume.
// The folder is written by tests/data/images/make_image_folder.py (PIL).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "data/error.h"
#include "data/hdf5.h"
#include "data/image_codec.h"
#include "data/image_folder.h"
#include "data/resized_crop.h"
#include "data/split_reader.h"
#include "tests/data/test_support.h"

namespace mone {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kTrainGood = 12, kValGood = 3, kTestGood = 6;  // make_image_folder.py's counts

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::CommandResult made = testing::run_command(std::string(MONE_PYTHON) + " " + MONE_IMAGE_SCRIPTS +
                                                             "/make_image_folder.py " + folder().string());
    if (made.status != 0) GTEST_SKIP() << "cannot write the test images (needs python3-pil, numpy): " << made.output;
  }

  fs::path folder() const { return dir_.path() / "folder"; }

  ImageFolderOptions folders(Storage storage, int threads = 2) const {
    ImageFolderOptions options;
    options.train = folder() / "train";
    options.val = folder() / "val";
    options.test = folder() / "test";
    options.storage = storage;
    options.size = 16;
    options.skip_bad = true;
    options.threads = threads;
    return options;
  }

  Manifest convert(const std::string& name, const ImageFolderOptions& folders) const {
    ConvertOptions options;
    options.out = dir_.path() / name;
    options.shard_size = 5;
    options.seed = 3;
    return convert_image_folder(folders, options);
  }

  // (height, width) -> PIL's RGB decode of the file of that size.
  std::map<std::pair<int64_t, int64_t>, std::pair<std::string, std::vector<uint8_t>>> expected() const {
    std::map<std::pair<int64_t, int64_t>, std::pair<std::string, std::vector<uint8_t>>> result;
    std::ifstream index(folder() / "expected.txt");
    std::string path;
    int64_t height = 0, width = 0;
    for (int n = 0; index >> path >> height >> width; ++n) {
      result[{height, width}] = {path, file_bytes(folder() / "expected" / (std::to_string(n) + ".rgb"))};
    }
    return result;
  }

  testing::TempDir dir_;
};

TEST_F(ImageFolder, ConvertsSkippingAndRecordingBadFiles) {
  const Manifest manifest = convert("encoded", folders(Storage::encoded));
  EXPECT_EQ(manifest.class_names, (std::vector<std::string>{"apple", "banana", "cherry", "durian"}));
  const Manifest stored = read_manifest(dir_.path() / "encoded");
  EXPECT_EQ(stored.storage, Storage::encoded);
  EXPECT_EQ(stored.class_names, manifest.class_names);
  EXPECT_EQ(stored.shape, (ImageShape{16, 16, 3}));
  EXPECT_TRUE(stored.records_skipped);
  std::vector<std::string> skipped = stored.skipped_files;
  std::sort(skipped.begin(), skipped.end());
  const fs::path train = folder() / "train";
  EXPECT_EQ(skipped, (std::vector<std::string>{(train / "apple/corrupt.jpg").string(),
                                               (train / "banana/truncated.png").string(),
                                               (train / "cherry/notes.txt").string()}));
  EXPECT_EQ(Dataset::open(dir_.path() / "encoded", "train").samples, kTrainGood);
  EXPECT_EQ(Dataset::open(dir_.path() / "encoded", "val").samples, kValGood);
  EXPECT_EQ(Dataset::open(dir_.path() / "encoded", "test").samples, kTestGood);
  EXPECT_EQ(testing::loader_error(dir_.path() / "encoded", "train"), "");
  for (const double value : stored.std) EXPECT_GT(value, 0.05);  // real statistics, not a default
}

TEST_F(ImageFolder, CommandNamesTheFirstBadFileAndStops) {
  const std::string common = std::string(MONE_DATA_TOOL) + " --from imagefolder --progress none --train " +
                             (folder() / "train").string() + " --out ";
  const testing::CommandResult stopped = testing::run_command(common + (dir_.path() / "a").string());
  EXPECT_NE(stopped.status, 0);
  // The first bad file in the seeded order is apple/corrupt.jpg for seed 0.
  EXPECT_CONTAINS(stopped.output, "mone-data: error: " + (folder() / "train/apple/corrupt.jpg").string() +
                                      ": corrupt JPEG: Premature end of JPEG file (--skip-bad skips undecodable files)");
  EXPECT_CONTAINS(stopped.output, "warning: " + (folder() / "train/durian").string() + ": class folder holds no files");
  EXPECT_FALSE(fs::exists(dir_.path() / "a" / "manifest.h5"));

  const testing::CommandResult skipped = testing::run_command(common + (dir_.path() / "b").string() + " --skip-bad");
  EXPECT_EQ(skipped.status, 0) << skipped.output;
  EXPECT_CONTAINS(skipped.output, "skipped " + (folder() / "train/banana/truncated.png").string() +
                                      ": corrupt PNG: the file is truncated");
  EXPECT_CONTAINS(skipped.output, "skipped " + (folder() / "train/cherry/notes.txt").string() +
                                      ": not a JPEG or PNG file");
  EXPECT_CONTAINS(skipped.output, "train: 12 samples in 1 shards");
  EXPECT_CONTAINS(skipped.output, "skipped 3 undecodable files");

  const testing::CommandResult bad_store = testing::run_command(common + (dir_.path() / "c").string() + " --store jpeg");
  EXPECT_NE(bad_store.status, 0);
  EXPECT_CONTAINS(bad_store.output, "mone-data: error: --store 'jpeg' is not one of raw, encoded");
}

// Every stored image decodes to exactly what PIL decodes from the original
// file: PNGs are lossless; JPEGs are the same bytes decoded by the same
// libjpeg-turbo with the same settings (accurate IDCT, smooth upsampling),
// so the tolerance is 0 for both.
TEST_F(ImageFolder, StoredImagesDecodeAsPil) {
  convert("encoded", folders(Storage::encoded));
  const auto truth = expected();
  int pngs = 0, jpegs = 0;
  for (const std::string split : {"train", "val", "test"}) {
    const Dataset dataset = Dataset::open(dir_.path() / "encoded", split);
    const SplitReader reader(dataset, true);
    for (int64_t i = 0; i < dataset.samples; ++i) {
      SplitReader::EncodedSample sample;
      reader.read_encoded(i, sample);
      const auto found = truth.find({sample.height, sample.width});
      ASSERT_NE(found, truth.end()) << split << " sample " << i << " has a size no file has";
      const DecodedImage image = decode_image(sample.bytes.data(), sample.bytes.size(), 3);
      ASSERT_EQ(image.height, sample.height);
      ASSERT_EQ(image.width, sample.width);
      EXPECT_EQ(image.pixels, found->second.second) << found->second.first;
      const bool jpeg = sniff_image_format(sample.bytes.data(), sample.bytes.size()) == ImageFormat::jpeg;
      (jpeg ? jpegs : pngs) += 1;
      if (jpeg) {
        EXPECT_EQ(sample.bytes, file_bytes(folder() / found->second.first)) << "JPEGs are stored as they are";
      }
    }
  }
  EXPECT_EQ(pngs + jpegs, kTrainGood + kValGood + kTestGood);
  EXPECT_GE(jpegs, 6);
  EXPECT_GE(pngs, 12);
}

TEST_F(ImageFolder, GreyDecodingIsPilsLuma) {
  const auto truth = expected();
  for (const auto& [size, entry] : truth) {
    const std::vector<uint8_t> bytes = file_bytes(folder() / entry.first);
    const DecodedImage rgb = decode_image(bytes.data(), bytes.size(), 3);
    const DecodedImage grey = decode_image(bytes.data(), bytes.size(), 1);
    ASSERT_EQ(grey.pixels.size(), rgb.pixels.size() / 3);
    for (size_t i = 0; i < grey.pixels.size(); ++i) {
      const uint8_t* p = rgb.pixels.data() + 3 * i;
      ASSERT_EQ(grey.pixels[i], (19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16) << entry.first;
    }
  }
}

TEST_F(ImageFolder, SameFolderTwiceGivesIdenticalShards) {
  for (const Storage storage : {Storage::encoded, Storage::raw}) {
    const Manifest first = convert("first", folders(storage, 1));
    const Manifest second = convert("second", folders(storage, 2));  // another thread count too
    int compared = 0;
    for (const auto& [split, shards] : first.splits) {
      ASSERT_EQ(shards.size(), second.splits.at(split).size());
      for (size_t s = 0; s < shards.size(); ++s) {
        EXPECT_EQ(shards[s].crc32, second.splits.at(split)[s].crc32);
        EXPECT_EQ(file_bytes(dir_.path() / "first" / shards[s].file), file_bytes(dir_.path() / "second" / shards[s].file))
            << shards[s].file << " differs between two conversions";
        ++compared;
      }
    }
    EXPECT_EQ(compared, 3 + 1 + 2);
    EXPECT_EQ(file_bytes(dir_.path() / "first" / "manifest.h5"), file_bytes(dir_.path() / "second" / "manifest.h5"))
        << "the manifests differ between two conversions";
    fs::remove_all(dir_.path() / "first");
    fs::remove_all(dir_.path() / "second");
  }
}

// Raw storage (shorter side to S, centre crop) and the encoded loader's
// evaluation transform with crop fraction 1 give the same pixels; the
// normalised floats differ only through each manifest's mean/std.
TEST_F(ImageFolder, RawAndEncodedGiveTheSameEvaluationImages) {
  const Manifest raw = convert("raw", folders(Storage::raw));
  const Manifest encoded = convert("encoded", folders(Storage::encoded));
  EXPECT_EQ(raw.storage, Storage::raw);
  for (const std::string split : {"train", "test"}) {
    std::vector<std::vector<float>> pixels;
    std::vector<std::vector<int32_t>> labels;
    for (const auto& [name, manifest] : {std::pair{"raw", raw}, std::pair{"encoded", encoded}}) {
      LoaderOptions options;
      options.dir = dir_.path() / name;
      options.split = split;
      options.batch_per_rank = 100;
      options.mode = LoaderMode::eval;
      options.eval_crop_fraction = 1.0;
      options.dct_downscale = false;
      Loader loader(options);
      Batch batch;
      ASSERT_TRUE(loader.next(batch));
      EXPECT_EQ(batch.shape, (ImageShape{16, 16, 3}));
      std::vector<float> values(batch.images.data(), batch.images.data() + batch.count * batch.shape.pixels());
      for (size_t i = 0; i < values.size(); ++i) {  // back to pixel values with this dataset's statistics
        const size_t c = i % 3;
        values[i] = static_cast<float>((values[i] * manifest.std[c] + manifest.mean[c]) * 255.0);
      }
      pixels.push_back(values);
      labels.push_back(batch.labels);
    }
    EXPECT_EQ(labels[0], labels[1]);
    ASSERT_EQ(pixels[0].size(), pixels[1].size());
    double worst = 0;
    for (size_t i = 0; i < pixels[0].size(); ++i) worst = std::max(worst, std::abs(double(pixels[0][i]) - pixels[1][i]));
    EXPECT_LT(worst, 1e-3) << split << ": the same uint8 pixels, up to float32 normalisation";
  }
}

// The crop boxes follow torchvision's get_params draw for draw: a Python
// re-implementation (tests/data/images/rrc_reference.py) fed by the same
// counter-based stream must give the same integers, fallbacks included.
TEST_F(ImageFolder, RandomResizedCropFollowsTorchvisionsRule) {
  struct Case {
    int64_t height, width;
    RandomResizedCropOptions options;
  };
  const std::vector<Case> cases = {{375, 500, {}}, {500, 375, {}}, {224, 224, {}}, {31, 47, {}},
                                   {10, 1000, {0.5, 1.0}},        // always too tall: fallback, wide
                                   {1000, 10, {0.5, 1.0}},        // fallback, tall
                                   {100, 100, {0.9, 1.0, 2.0, 3.0}}};  // fallback inside the ratio clamp
  std::ostringstream input;
  std::vector<CropBox> ours;
  for (const Case& c : cases) {
    for (int64_t sample = 0; sample < 40; ++sample) {
      const uint64_t seed = 7, epoch = static_cast<uint64_t>(sample % 3);
      data_random::Stream draws(data_random::key(data_random::key(seed, data_random::kAugment, epoch),
                                                 static_cast<uint64_t>(sample)));
      ours.push_back(random_resized_crop_box(c.height, c.width, c.options, draws));
      char line[256];
      std::snprintf(line, sizeof line, "%llu %llu %lld %lld %lld %.17g %.17g %.17g %.17g\n",
                    static_cast<unsigned long long>(seed), static_cast<unsigned long long>(epoch),
                    static_cast<long long>(sample), static_cast<long long>(c.height), static_cast<long long>(c.width),
                    c.options.scale_min, c.options.scale_max, c.options.ratio_min, c.options.ratio_max);
      input << line;
    }
  }
  const fs::path cases_file = dir_.path() / "rrc-cases.txt";
  std::ofstream(cases_file) << input.str();
  const testing::CommandResult reference = testing::run_command(std::string(MONE_PYTHON) + " " + MONE_IMAGE_SCRIPTS +
                                                                "/rrc_reference.py < " + cases_file.string());
  ASSERT_EQ(reference.status, 0) << reference.output;
  std::istringstream lines(reference.output);
  int fallbacks = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    int64_t top = -1, left = -1, height = -1, width = -1, fallback = -1;
    ASSERT_TRUE(lines >> top >> left >> height >> width >> fallback) << "reference output ended at case " << i;
    EXPECT_EQ(ours[i].top, top) << "case " << i;
    EXPECT_EQ(ours[i].left, left) << "case " << i;
    EXPECT_EQ(ours[i].height, height) << "case " << i;
    EXPECT_EQ(ours[i].width, width) << "case " << i;
    fallbacks += static_cast<int>(fallback);
  }
  EXPECT_GE(fallbacks, 120) << "the three fallback cases must reach the fallback";
}

TEST_F(ImageFolder, DctScalingDecodesJustLargeEnough) {
  const auto truth = expected();
  int scaled = 0;
  for (const auto& [size, entry] : truth) {
    const std::vector<uint8_t> bytes = file_bytes(folder() / entry.first);
    if (sniff_image_format(bytes.data(), bytes.size()) != ImageFormat::jpeg) continue;
    const auto [height, width] = size;
    const DecodedImage half = decode_image(bytes.data(), bytes.size(), 3, height / 2, width / 2);
    EXPECT_GE(half.height, height / 2);
    EXPECT_GE(half.width, width / 2);
    EXPECT_LT(half.width, width) << "a smaller M/8 scale was available";
    const DecodedImage full = decode_image(bytes.data(), bytes.size(), 3, height, width);
    EXPECT_EQ(full.width, width);
    ++scaled;
  }
  EXPECT_GE(scaled, 6);
}

// Resuming at position P with another rank count delivers the same images
// for the same stream positions (training: RandomResizedCrop, flip, DCT scaling on).
TEST_F(ImageFolder, ResumeWithAnotherRankCountSeesTheSameImages) {
  convert("encoded", folders(Storage::encoded));
  const auto make = [&](int64_t rank, int64_t world, int64_t start) {
    LoaderOptions options;
    options.dir = dir_.path() / "encoded";
    options.global_batch = 4;
    options.rank = rank;
    options.world = world;
    options.seed = 11;
    options.image_size = 12;
    return std::make_unique<Loader>(options, start);
  };
  std::map<int64_t, std::vector<float>> reference;  // stream position -> image
  {
    auto loader = make(0, 1, 0);
    Batch batch;
    for (int b = 0; b < 8; ++b) {  // past an epoch boundary (12 samples)
      ASSERT_TRUE(loader->next(batch));
      const int64_t pixels = batch.shape.pixels();
      ASSERT_EQ(pixels, 12 * 12 * 3);
      for (int64_t j = 0; j < batch.count; ++j) {
        reference[batch.position + j].assign(batch.images.data() + j * pixels, batch.images.data() + (j + 1) * pixels);
      }
    }
  }
  const int64_t resume_at = 8;
  int compared = 0;
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto loader = make(rank, 2, resume_at);
    Batch batch;
    for (int b = 0; b < 5; ++b) {
      ASSERT_TRUE(loader->next(batch));
      const int64_t pixels = batch.shape.pixels();
      for (int64_t j = 0; j < batch.count; ++j) {
        const int64_t position = batch.position + rank + j * 2;
        const std::vector<float> image(batch.images.data() + j * pixels, batch.images.data() + (j + 1) * pixels);
        EXPECT_EQ(image, reference.at(position)) << "rank " << rank << " position " << position;
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 20);
}

TEST_F(ImageFolder, UnknownVersionIsRejected) {
  convert("encoded", folders(Storage::encoded));
  const fs::path manifest = dir_.path() / "encoded" / "manifest.h5";
  {
    const auto held = h5::lock();
    const h5::Handle file(H5Fopen(manifest.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    ASSERT_GE(H5Adelete(file, "version"), 0);
    h5::set_attribute(file, "version", int64_t{3}, manifest.string());
  }
  try {
    read_manifest(dir_.path() / "encoded");
    FAIL() << "a version 3 manifest was accepted";
  } catch (const DataError& error) {
    EXPECT_CONTAINS(error.what(), manifest.string() + ": format version 3, this build reads versions 1 (raw images) "
                                                      "and 2 (encoded images)");
  }
}

TEST_F(ImageFolder, CorruptEncodedSampleIsNamed) {
  convert("encoded", folders(Storage::encoded));
  LoaderOptions options;
  options.dir = dir_.path() / "encoded";
  options.split = "test";
  options.batch_per_rank = 10;
  options.mode = LoaderMode::eval;
  options.verify_checksums = false;  // let the damaged bytes reach the decoder
  const fs::path shard = dir_.path() / "encoded" / "test-00000.h5";
  {
    const auto held = h5::lock();
    const h5::Handle file(H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    const h5::Handle images(H5Dopen2(file, "images", H5P_DEFAULT), H5Dclose);
    std::vector<uint8_t> zeros(8, 0);  // the first image's signature
    const hsize_t start = 0, count = zeros.size();
    const h5::Handle space(H5Dget_space(images), H5Sclose);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    const h5::Handle memory(H5Screate_simple(1, &count, nullptr), H5Sclose);
    ASSERT_GE(H5Dwrite(images, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, zeros.data()), 0);
  }
  Loader loader(options);
  Batch batch;
  try {
    loader.next(batch);
    FAIL() << "a damaged image was decoded";
  } catch (const DataError& error) {
    EXPECT_CONTAINS(error.what(), (dir_.path() / "encoded").string() + ": test sample 0: not a JPEG or PNG file");
  }
  options.verify_checksums = true;
  EXPECT_CONTAINS(testing::loader_error(options.dir, "test"), shard.string() + ": checksum mismatch");
}

}  // namespace
}  // namespace mone
