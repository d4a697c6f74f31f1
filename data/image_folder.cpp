#include "data/image_folder.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>

#include "data/channel_statistics.h"
#include "data/encoded_shard.h"
#include "data/error.h"
#include "data/image_codec.h"
#include "data/random.h"
#include "data/resized_crop.h"
#include "data/shard.h"
#include "data/worker_pool.h"

namespace fs = std::filesystem;

namespace mone {

namespace {

bool hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot be opened");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(path.string() + ": cannot be read");
  return bytes;
}

// What a worker makes of one file.
struct Prepared {
  std::string error;  // empty: the file decoded
  int64_t height = 0, width = 0;
  std::vector<uint8_t> payload;  // encoded: the bytes to store; raw: the S x S x C pixels
  std::optional<ChannelStatistics> statistics;
};

using FileWork = std::function<void(const LabelledFile&, Prepared&)>;

class FolderConverter {
 public:
  FolderConverter(const ImageFolderOptions& folders, const ConvertOptions& options, int64_t classes,
                  Progress& progress)
      : folders_(folders), options_(options), classes_(classes), progress_(progress), pool_(folders.threads) {}

  std::vector<ShardEntry> write_split(const std::vector<LabelledFile>& files, const std::string& split,
                                      ChannelStatistics* statistics) {
    return folders_.storage == Storage::encoded ? write_encoded(files, split, statistics)
                                                : write_raw(files, split, statistics);
  }

  std::vector<std::string> skipped() const { return skipped_; }

 private:
  // prepare() for every file on the pool, a block at a time; consume() in
  // file order, so the result does not depend on the thread count.
  void in_order(const std::vector<LabelledFile>& files, const FileWork& prepare,
                const std::function<void(const LabelledFile&, Prepared&)>& consume) {
    const auto block = static_cast<int64_t>(16 * folders_.threads);
    std::vector<Prepared> results(static_cast<size_t>(block));
    const auto total = static_cast<int64_t>(files.size());
    for (int64_t first = 0; first < total; first += block) {
      const int64_t count = std::min(block, total - first);
      pool_.parallel_for(count, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          Prepared& result = results[static_cast<size_t>(j)];
          result = Prepared{};
          const LabelledFile& file = files[static_cast<size_t>(first + j)];
          try {
            prepare(file, result);
          } catch (const DataError& error) {
            result.error = file.path.string() + ": " + error.what();
          }
        }
      });
      for (int64_t j = 0; j < count; ++j) {
        consume(files[static_cast<size_t>(first + j)], results[static_cast<size_t>(j)]);
        progress_.advance(1);
      }
    }
  }

  // False for a bad file that is skipped; throws for one that is not.
  bool accept(const LabelledFile& file, const Prepared& result) {
    if (result.error.empty()) return true;
    if (!folders_.skip_bad) throw DataError(result.error + " (--skip-bad skips undecodable files)");
    std::cerr << "skipped " << result.error << "\n";
    skipped_.push_back(file.path.string());
    return false;
  }

  std::vector<ShardEntry> write_encoded(const std::vector<LabelledFile>& files, const std::string& split,
                                        ChannelStatistics* statistics) {
    const int64_t channels = folders_.channels;
    const FileWork prepare = [&](const LabelledFile& file, Prepared& result) {
      std::vector<uint8_t> bytes = read_file_bytes(file.path);
      const DecodedImage image = decode_image(bytes.data(), bytes.size(), channels);
      result.height = image.height;
      result.width = image.width;
      // A JPEG is kept as it is; a PNG is stored as the 8-bit grey or RGB image it decodes to.
      const bool jpeg = sniff_image_format(bytes.data(), bytes.size()) == ImageFormat::jpeg;
      result.payload = jpeg ? std::move(bytes) : encode_png(image);
      if (statistics != nullptr) {
        result.statistics.emplace(channels);
        result.statistics->add(image.pixels.data(), static_cast<int64_t>(image.pixels.size()));
      }
    };
    std::vector<ShardEntry> shards;
    std::unique_ptr<EncodedShardWriter> writer;
    std::string name;
    const auto finish = [&] {
      shards.push_back({name, writer->samples(), writer->finish()});
      writer.reset();
    };
    in_order(files, prepare, [&](const LabelledFile& file, Prepared& result) {
      if (!accept(file, result)) return;
      if (!writer) {
        name = data_format::shard_file_name(split, static_cast<int64_t>(shards.size()));
        writer = std::make_unique<EncodedShardWriter>(options_.out / name, split, channels, classes_);
      }
      writer->append(result.payload, result.height, result.width, file.label);
      if (statistics != nullptr) statistics->merge(*result.statistics);
      if (writer->samples() == options_.shard_size) finish();
    });
    if (writer) finish();
    return shards;
  }

  // A ShardWriter needs its sample count up front: a first pass finds the
  // decodable files, a second decodes them again and stores S x S crops.
  std::vector<ShardEntry> write_raw(const std::vector<LabelledFile>& files, const std::string& split,
                                    ChannelStatistics* statistics) {
    const int64_t channels = folders_.channels, size = folders_.size;
    std::vector<LabelledFile> good;
    in_order(
        files,
        [&](const LabelledFile& file, Prepared&) {
          const std::vector<uint8_t> bytes = read_file_bytes(file.path);
          decode_image(bytes.data(), bytes.size(), channels);
        },
        [&](const LabelledFile& file, Prepared& result) {
          if (accept(file, result)) good.push_back(file);
        });
    const FileWork prepare = [&](const LabelledFile& file, Prepared& result) {
      const std::vector<uint8_t> bytes = read_file_bytes(file.path);
      const DecodedImage image = decode_image(bytes.data(), bytes.size(), channels);
      result.payload.resize(static_cast<size_t>(size * size * channels));
      resample_box(image.pixels.data(), image.height, image.width, channels,
                   centre_crop_box(image.height, image.width, size, 1.0), size, size, result.payload.data());
    };
    std::vector<ShardEntry> shards;
    const auto total = static_cast<int64_t>(good.size());
    for (int64_t first = 0; first < total; first += options_.shard_size) {
      const int64_t count = std::min(options_.shard_size, total - first);
      const std::string name = data_format::shard_file_name(split, static_cast<int64_t>(shards.size()));
      ShardWriter writer(options_.out / name, split, {size, size, channels}, classes_, count, options_.deflate_level,
                         /*timestamps=*/false);
      const std::vector<LabelledFile> part(good.begin() + first, good.begin() + first + count);
      in_order(part, prepare, [&](const LabelledFile& file, Prepared& result) {
        if (!result.error.empty()) throw DataError(result.error + " (it decoded on the first pass)");
        writer.append(result.payload.data(), &file.label, 1);
        if (statistics != nullptr) statistics->add(result.payload.data(), static_cast<int64_t>(result.payload.size()));
      });
      shards.push_back({name, count, writer.finish()});
    }
    return shards;
  }

  const ImageFolderOptions& folders_;
  const ConvertOptions& options_;
  int64_t classes_;
  Progress& progress_;
  WorkerPool pool_;
  std::vector<std::string> skipped_;
};

// The files in the seeded order they are stored in (split_number keeps the
// splits' shuffles independent).
std::vector<LabelledFile> shuffled(const std::vector<LabelledFile>& files, uint64_t seed, uint64_t split_number) {
  const std::vector<int64_t> order = data_random::permutation(
      static_cast<int64_t>(files.size()), data_random::key(seed, data_random::kFileOrder, split_number));
  std::vector<LabelledFile> result;
  result.reserve(files.size());
  for (const int64_t i : order) result.push_back(files[static_cast<size_t>(i)]);
  return result;
}

}  // namespace

std::vector<std::string> image_folder_classes(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw DataError(dir.string() + ": not a directory (--train needs an image folder)");
  std::vector<std::string> classes;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && !hidden(entry.path())) classes.push_back(entry.path().filename().string());
  }
  if (classes.empty()) throw DataError(dir.string() + ": no class folders (expected DIR/<class>/<image files>)");
  std::sort(classes.begin(), classes.end());
  return classes;
}

std::vector<LabelledFile> list_image_folder(const fs::path& dir, const std::vector<std::string>& classes) {
  std::vector<LabelledFile> files;
  for (const std::string& name : image_folder_classes(dir)) {
    const auto found = std::find(classes.begin(), classes.end(), name);
    if (found == classes.end()) {
      throw DataError((dir / name).string() + ": class folder '" + name + "' is not among the training classes");
    }
    const auto label = static_cast<int32_t>(found - classes.begin());
    std::vector<fs::path> paths;
    for (const fs::directory_entry& entry :
         fs::recursive_directory_iterator(dir / name, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_regular_file() && !hidden(entry.path())) paths.push_back(entry.path());
    }
    if (paths.empty()) std::cerr << "warning: " << (dir / name).string() << ": class folder holds no files\n";
    std::sort(paths.begin(), paths.end());
    for (const fs::path& path : paths) files.push_back({path, label});
  }
  return files;
}

Manifest convert_image_folder(const ImageFolderOptions& folders, const ConvertOptions& options) {
  if (folders.channels != 1 && folders.channels != 3) {
    throw DataError("--channels " + std::to_string(folders.channels) + " must be 1 or 3 for image folders");
  }
  if (folders.size <= 0) throw DataError("--resize " + std::to_string(folders.size) + " must be positive");
  if (folders.threads < 1) throw DataError("--threads " + std::to_string(folders.threads) + " must be >= 1");
  if (options.shard_size <= 0) throw DataError("--shard-size " + std::to_string(options.shard_size) + " must be positive");
  if (!folders.val.empty() && options.validation_count > 0) {
    throw DataError("--val-count and --val DIR both ask for a validation split; give one");
  }
  fs::create_directories(options.out);
  if (fs::exists(options.out / data_format::kManifestFile)) {
    throw DataError(options.out.string() + ": already holds a dataset (" + data_format::kManifestFile +
                    "); remove it or choose another --out");
  }

  Manifest manifest;
  manifest.storage = folders.storage;
  manifest.class_names = image_folder_classes(folders.train);
  manifest.classes = static_cast<int64_t>(manifest.class_names.size());
  manifest.shape = {folders.size, folders.size, folders.channels};
  std::vector<LabelledFile> train = list_image_folder(folders.train, manifest.class_names);
  std::vector<LabelledFile> val, test;
  if (!folders.val.empty()) val = list_image_folder(folders.val, manifest.class_names);
  if (!folders.test.empty()) test = list_image_folder(folders.test, manifest.class_names);
  if (options.validation_count < 0 || options.validation_count >= static_cast<int64_t>(train.size())) {
    throw DataError("--val-count " + std::to_string(options.validation_count) + " must be in [0, " +
                    std::to_string(train.size()) + ") (the training files)");
  }
  if (options.validation_count > 0) {
    const std::vector<bool> in_validation =
        validation_mask(static_cast<int64_t>(train.size()), options.validation_count, options.seed);
    std::vector<LabelledFile> kept;
    for (size_t i = 0; i < train.size(); ++i) (in_validation[i] ? val : kept).push_back(train[i]);
    train = std::move(kept);
  }

  const int64_t passes = folders.storage == Storage::raw ? 2 : 1;
  Progress progress(std::cerr, options.progress,
                    passes * static_cast<int64_t>(train.size() + val.size() + test.size()));
  FolderConverter converter(folders, options, manifest.classes, progress);
  ChannelStatistics statistics(folders.channels);
  manifest.splits["train"] = converter.write_split(shuffled(train, options.seed, 0), "train", &statistics);
  if (manifest.splits["train"].empty()) throw DataError(folders.train.string() + ": no decodable images");
  const std::vector<std::pair<std::string, const std::vector<LabelledFile>*>> others = {{"val", &val},
                                                                                        {"test", &test}};
  for (size_t i = 0; i < others.size(); ++i) {
    std::vector<ShardEntry> shards = converter.write_split(shuffled(*others[i].second, options.seed, i + 1),
                                                           others[i].first, nullptr);
    if (!shards.empty()) manifest.splits[others[i].first] = std::move(shards);
  }
  progress.finish();
  statistics.result(manifest.mean, manifest.std);
  manifest.records_skipped = true;
  manifest.skipped_files = converter.skipped();
  write_manifest(options.out, manifest, /*timestamps=*/false);
  return manifest;
}

}  // namespace mone
