// Image collections in torchvision's ImageFolder layout (one subfolder per
// class, class index = position among the sorted folder names) converted
// into a mone dataset, either as raw S x S arrays (format version 1) or as
// the encoded files themselves (version 2). Decoding runs on a worker pool;
// shards are written in a seeded shuffled order, so the result is the same
// for any thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/convert.h"
#include "data/dataset.h"

namespace mone {

struct ImageFolderOptions {
  std::filesystem::path train;     // required: its subfolders are the classes
  std::filesystem::path val, test;  // optional, with (a subset of) the same class folders
  Storage storage = Storage::encoded;
  // raw: the stored size (shorter side to S, centre crop S x S); encoded:
  // the manifest's image size, the loader's default crop size.
  int64_t size = 224;
  int64_t channels = 3;   // 1 (grey) or 3 (RGB)
  bool skip_bad = false;  // skip (and record) undecodable files instead of stopping
  int threads = 1;        // decoding threads
};

struct LabelledFile {
  std::filesystem::path path;
  int32_t label = 0;
};

// The sorted class folder names of `dir` (DataError when there are none).
std::vector<std::string> image_folder_classes(const std::filesystem::path& dir);
// Every regular file (not starting with '.') under each class folder, in
// sorted path order, with its class index; classes not in `classes` are an
// error naming the folder. A class folder without files gets a warning.
std::vector<LabelledFile> list_image_folder(const std::filesystem::path& dir, const std::vector<std::string>& classes);

// `options` gives the output, shard size, seed (validation split from
// --val-count and the shard order), deflate level (raw) and progress.
Manifest convert_image_folder(const ImageFolderOptions& folders, const ConvertOptions& options);

}  // namespace mone
