// A converted dataset on disk: its manifest (what the splits, shards, image
// shape, classes and normalisation statistics are) and Dataset, one split of
// it as the trainer sees it. The layout is described in docs/data-format.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/format.h"

namespace mone {

struct ShardEntry {
  std::string file;  // relative to the dataset directory
  int64_t samples = 0;
  uint32_t crc32 = 0;  // see data/checksum.h
};

// How a dataset's shards hold images (docs/data-format.md): raw uint8 arrays
// of one shape (format version 1), or the encoded files (version 2), whose
// manifest shape is the default image size the loader crops to.
enum class Storage { raw, encoded };

struct Manifest {
  Storage storage = Storage::raw;
  ImageShape shape;
  int64_t classes = 0;
  std::vector<std::string> class_names;
  // Per channel, in units of pixel/255, over the training split.
  std::vector<double> mean;
  std::vector<double> std;
  std::map<std::string, std::vector<ShardEntry>> splits;
  // Converted from image files: how many could not be decoded and were
  // skipped (--skip-bad), recorded even when 0; their paths.
  bool records_skipped = false;
  std::vector<std::string> skipped_files;
};

// Both write through a temporary name, so a manifest is either whole or absent.
// timestamps = false: without HDF5's object times, so the same manifest
// gives the same bytes (image folders; see h5::create_file).
void write_manifest(const std::filesystem::path& dir, const Manifest& manifest, bool timestamps = true);
// Throws DataError; a missing manifest gives the command that creates one.
Manifest read_manifest(const std::filesystem::path& dir);

// What a run records of the data it trains on (checkpoints): the splits'
// sample counts and a CRC-32 over every shard's name, size and checksum, as
// "train 55000, val 5000, test 10000; crc32 0x1234abcd". Two conversions of
// the same images give the same identity; any other data gives another.
std::string dataset_identity(const Manifest& manifest);

struct Dataset {
  Storage storage = Storage::raw;
  std::filesystem::path dir;
  std::string split;
  int64_t samples = 0;
  ImageShape shape;  // encoded storage: the default size the loader crops to
  int64_t classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean;
  std::vector<double> std;
  std::vector<ShardEntry> shards;

  // Reads the manifest only; shards are opened (and verified) by the Loader.
  static Dataset open(const std::filesystem::path& dir, const std::string& split);
};

}  // namespace mone
