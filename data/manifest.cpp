#include <cstdio>
#include <filesystem>

#include "data/dataset.h"
#include "data/checksum.h"
#include "data/error.h"
#include "data/hdf5.h"

namespace mone {

namespace {

constexpr const char* kFormatName = "mone-data";
constexpr const char* kEncodedStorage = "encoded";

void check_manifest(const Manifest& manifest, const std::string& file) {
  const auto fail = [&](const std::string& what) { throw DataError(file + ": " + what); };
  const ImageShape& shape = manifest.shape;
  if (shape.height <= 0 || shape.width <= 0 || shape.channels <= 0) {
    fail("image shape " + shape.to_string() + " is not positive");
  }
  if (manifest.classes <= 0) fail("class count " + std::to_string(manifest.classes) + " is not positive");
  if (static_cast<int64_t>(manifest.class_names.size()) != manifest.classes) {
    fail("lists " + std::to_string(manifest.class_names.size()) + " class names for " +
         std::to_string(manifest.classes) + " classes");
  }
  if (static_cast<int64_t>(manifest.mean.size()) != shape.channels ||
      static_cast<int64_t>(manifest.std.size()) != shape.channels) {
    fail("mean/std must have one value per channel (" + std::to_string(shape.channels) + ")");
  }
  for (const auto& [split, shards] : manifest.splits) {
    for (const ShardEntry& shard : shards) {
      if (shard.samples <= 0) fail("shard " + shard.file + " of split '" + split + "' is empty");
    }
  }
}

}  // namespace

void write_manifest(const std::filesystem::path& dir, const Manifest& manifest, bool timestamps) {
  const std::filesystem::path final_path = dir / data_format::kManifestFile;
  const std::string temporary = final_path.string() + ".tmp";
  check_manifest(manifest, final_path.string());
  {
    const auto held = h5::lock();
    const h5::Handle file = h5::create_file(temporary, timestamps);
    // HDF5's defaults (H5P_DEFAULT) when timestamps are kept.
    const h5::Handle untimed_datasets = h5::dataset_creation_properties(false, temporary);
    const h5::Handle untimed_groups = h5::group_creation_properties(false, temporary);
    const hid_t datasets = timestamps ? H5P_DEFAULT : untimed_datasets.get();
    const hid_t groups = timestamps ? H5P_DEFAULT : untimed_groups.get();
    h5::set_attribute(file, "format", std::string(kFormatName), temporary);
    const bool encoded = manifest.storage == Storage::encoded;
    h5::set_attribute(file, "version", encoded ? data_format::kEncodedVersion : data_format::kVersion, temporary);
    if (encoded) h5::set_attribute(file, "storage", std::string(kEncodedStorage), temporary);
    h5::set_attribute(file, "height", manifest.shape.height, temporary);
    h5::set_attribute(file, "width", manifest.shape.width, temporary);
    h5::set_attribute(file, "channels", manifest.shape.channels, temporary);
    h5::set_attribute(file, "classes", manifest.classes, temporary);
    h5::write_strings(file, "class_names", manifest.class_names, temporary, datasets);
    h5::write_vector(file, "mean", manifest.mean, temporary, datasets);
    h5::write_vector(file, "std", manifest.std, temporary, datasets);
    if (manifest.records_skipped) {
      h5::set_attribute(file, "skipped", static_cast<int64_t>(manifest.skipped_files.size()), temporary);
      if (!manifest.skipped_files.empty()) h5::write_strings(file, "skipped_files", manifest.skipped_files, temporary, datasets);
    }
    const h5::Handle splits(MONE_H5(H5Gcreate2(file, "splits", H5P_DEFAULT, groups, H5P_DEFAULT),
                                    temporary, "creating group 'splits'"),
                            H5Gclose);
    for (const auto& [name, shards] : manifest.splits) {
      const h5::Handle group(MONE_H5(H5Gcreate2(splits, name.c_str(), H5P_DEFAULT, groups, H5P_DEFAULT),
                                     temporary, "creating group 'splits/" + name + "'"),
                             H5Gclose);
      std::vector<std::string> files;
      std::vector<int64_t> samples;
      std::vector<uint32_t> checksums;
      for (const ShardEntry& shard : shards) {
        files.push_back(shard.file);
        samples.push_back(shard.samples);
        checksums.push_back(shard.crc32);
      }
      h5::write_strings(group, "shards", files, temporary, datasets);
      h5::write_vector(group, "samples", samples, temporary, datasets);
      h5::write_vector(group, "crc32", checksums, temporary, datasets);
    }
  }
  std::filesystem::rename(temporary, final_path);
}

Manifest read_manifest(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / data_format::kManifestFile;
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) {
    throw DataError("no dataset at " + dir.string() + " (" + file +
                    " does not exist); convert Fashion-MNIST there with: mone-data --out " +
                    dir.string() + "  (or see mone-data --help for CIFAR, IDX and synthetic data)");
  }
  const auto held = h5::lock();
  const h5::Handle handle = h5::open_file(file);
  if (h5::get_string_attribute(handle, "format", file) != kFormatName) {
    throw DataError(file + ": not a mone-data manifest (attribute 'format' is not '" +
                    std::string(kFormatName) + "')");
  }
  const int64_t version = h5::get_int_attribute(handle, "version", file);
  if (version != data_format::kVersion && version != data_format::kEncodedVersion) {
    throw DataError(file + ": format version " + std::to_string(version) + ", this build reads versions " +
                    std::to_string(data_format::kVersion) + " (raw images) and " +
                    std::to_string(data_format::kEncodedVersion) + " (encoded images)");
  }
  Manifest manifest;
  if (version == data_format::kEncodedVersion) {
    const std::string storage = h5::get_string_attribute(handle, "storage", file);
    if (storage != kEncodedStorage) {
      throw DataError(file + ": version 2 with storage '" + storage + "', expected '" + kEncodedStorage + "'");
    }
    manifest.storage = Storage::encoded;
  }
  manifest.shape.height = h5::get_int_attribute(handle, "height", file);
  manifest.shape.width = h5::get_int_attribute(handle, "width", file);
  manifest.shape.channels = h5::get_int_attribute(handle, "channels", file);
  manifest.classes = h5::get_int_attribute(handle, "classes", file);
  manifest.class_names = h5::read_strings(handle, "class_names", file);
  manifest.mean = h5::read_vector<double>(handle, "mean", file);
  manifest.std = h5::read_vector<double>(handle, "std", file);
  if (H5Aexists(handle, "skipped") > 0) {
    manifest.records_skipped = true;
    if (h5::get_int_attribute(handle, "skipped", file) > 0) {
      manifest.skipped_files = h5::read_strings(handle, "skipped_files", file);
    }
  }

  const h5::Handle splits(MONE_H5(H5Gopen2(handle, "splits", H5P_DEFAULT), file,
                                  "opening group 'splits'"),
                          H5Gclose);
  H5G_info_t info;
  MONE_H5(H5Gget_info(splits, &info), file, "counting the splits");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[256] = {};
    MONE_H5(H5Lget_name_by_idx(splits, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT),
            file, "naming a split");
    const h5::Handle group(MONE_H5(H5Gopen2(splits, name, H5P_DEFAULT), file,
                                   std::string("opening split '") + name + "'"),
                           H5Gclose);
    const auto files = h5::read_strings(group, "shards", file);
    const auto samples = h5::read_vector<int64_t>(group, "samples", file);
    const auto checksums = h5::read_vector<uint32_t>(group, "crc32", file);
    if (samples.size() != files.size() || checksums.size() != files.size()) {
      throw DataError(file + ": split '" + name +
                      "' has different numbers of shards, sample counts and checksums");
    }
    std::vector<ShardEntry>& shards = manifest.splits[name];
    for (size_t s = 0; s < files.size(); ++s) shards.push_back({files[s], samples[s], checksums[s]});
  }
  check_manifest(manifest, file);
  return manifest;
}

std::string dataset_identity(const Manifest& manifest) {
  Crc32 crc;
  std::string counts;
  for (const auto& [split, shards] : manifest.splits) {
    int64_t samples = 0;
    for (const ShardEntry& shard : shards) {
      const std::string record = split + "/" + shard.file + ":" + std::to_string(shard.samples) + ":" +
                                 std::to_string(shard.crc32) + "\n";
      crc.update(record.data(), record.size());
      samples += shard.samples;
    }
    counts += (counts.empty() ? "" : ", ") + split + " " + std::to_string(samples);
  }
  char hex[16];
  std::snprintf(hex, sizeof(hex), "0x%08x", crc.value());
  return counts + "; crc32 " + hex;
}

Dataset Dataset::open(const std::filesystem::path& dir, const std::string& split) {
  Manifest manifest = read_manifest(dir);
  const auto found = manifest.splits.find(split);
  if (found == manifest.splits.end()) {
    std::string available;
    for (const auto& entry : manifest.splits) available += (available.empty() ? "" : ", ") + entry.first;
    throw DataError((dir / data_format::kManifestFile).string() + ": no split '" + split +
                    "' (available: " + available + ")");
  }
  Dataset dataset;
  dataset.storage = manifest.storage;
  dataset.dir = dir;
  dataset.split = split;
  dataset.shape = manifest.shape;
  dataset.classes = manifest.classes;
  dataset.class_names = std::move(manifest.class_names);
  dataset.mean = std::move(manifest.mean);
  dataset.std = std::move(manifest.std);
  dataset.shards = found->second;
  for (const ShardEntry& shard : dataset.shards) dataset.samples += shard.samples;
  return dataset;
}

}  // namespace mone
