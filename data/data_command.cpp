#include "data/data_command.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <thread>

#include "data/convert.h"
#include "data/error.h"
#include "data/image_folder.h"

namespace po = boost::program_options;

namespace {

struct Arguments {
  std::string out, source = "fashion-mnist", from, input, class_names, progress = "auto";
  std::string train, val, test, store = "encoded";
  int64_t resize = 224;
  bool skip_bad = false;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int64_t shard_size = 10000, val_count = 0, height = 224, width = 224, channels = 3, classes = 10,
          count = 1000, test_count = 200;
  uint64_t seed = 0;
  int deflate = 0;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

mone::SourceDataset load_source(const Arguments& args) {
  const std::vector<std::string> known = {"fashion-mnist", "idx", "cifar10", "cifar100", "synthetic"};
  if (std::find(known.begin(), known.end(), args.source) == known.end()) {
    throw mone::DataError("--source '" + args.source +
                          "' is not one of fashion-mnist, idx, cifar10, cifar100, synthetic, imagefolder");
  }
  if (args.source == "fashion-mnist") {
    return mone::load_fashion_mnist(args.input.empty() ? mone::kFashionMnistDir : args.input);
  }
  if (args.source == "synthetic") {
    return mone::make_synthetic({{args.height, args.width, args.channels}, args.classes, args.count,
                                 args.test_count, args.seed});
  }
  if (args.input.empty()) throw mone::DataError("--source " + args.source + " needs --input DIR");
  if (args.source == "idx") return mone::load_idx(args.input, split_commas(args.class_names));
  if (args.source == "cifar10") return mone::load_cifar(args.input, mone::CifarVariant::cifar10);
  return mone::load_cifar(args.input, mone::CifarVariant::cifar100);
}

mone::ProgressStyle progress_style(const std::string& name) {
  if (name == "auto") return mone::progress_style_for_stderr();
  if (name == "bar") return mone::ProgressStyle::bar;
  if (name == "lines") return mone::ProgressStyle::lines;
  if (name == "none") return mone::ProgressStyle::none;
  throw mone::DataError("--progress '" + name + "' is not one of auto, bar, lines, none");
}

mone::Manifest convert_image_folder(const Arguments& args, const mone::ConvertOptions& convert) {
  if (args.train.empty()) throw mone::DataError("--source imagefolder needs --train DIR");
  if (args.store != "raw" && args.store != "encoded") {
    throw mone::DataError("--store '" + args.store + "' is not one of raw, encoded");
  }
  mone::ImageFolderOptions folders;
  folders.train = args.train;
  folders.val = args.val;
  folders.test = args.test;
  folders.storage = args.store == "raw" ? mone::Storage::raw : mone::Storage::encoded;
  folders.size = args.resize;
  folders.channels = args.channels;
  folders.skip_bad = args.skip_bad;
  folders.threads = args.threads;
  return mone::convert_image_folder(folders, convert);
}

int run(const std::string& program, const std::vector<std::string>& arguments) {
  Arguments args;
  po::options_description options(
      "Usage: " + program + " --out DIR [options]\n"
      "Converts a dataset into mone's format (docs/data-format.md). With only --out it converts\n"
      "Fashion-MNIST from " + std::string(mone::kFashionMnistDir) + ".\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("out,o", po::value(&args.out), "output directory (required)")
      ("source", po::value(&args.source)->default_value(args.source),
       "fashion-mnist, idx, cifar10, cifar100, synthetic or imagefolder")
      ("from", po::value(&args.from), "the same as --source")
      ("input", po::value(&args.input), "input directory (fashion-mnist: the Debian package's)")
      ("class-names", po::value(&args.class_names), "idx: comma-separated class names")
      ("shard-size", po::value(&args.shard_size)->default_value(args.shard_size), "samples per shard")
      ("val-count", po::value(&args.val_count)->default_value(args.val_count),
       "training samples moved to a 'val' split")
      ("seed", po::value(&args.seed)->default_value(args.seed),
       "seed of the validation split and of synthetic data")
      ("deflate", po::value(&args.deflate)->default_value(args.deflate), "deflate level 0-9 (0: none)")
      ("height", po::value(&args.height)->default_value(args.height), "synthetic: image height")
      ("width", po::value(&args.width)->default_value(args.width), "synthetic: image width")
      ("channels", po::value(&args.channels)->default_value(args.channels),
       "synthetic: channels; imagefolder: 1 (grey) or 3 (RGB) decoded channels")
      ("train", po::value(&args.train), "imagefolder: DIR/<class>/<images> of the train split")
      ("val", po::value(&args.val), "imagefolder: the val split's folder (same class names)")
      ("test", po::value(&args.test), "imagefolder: the test split's folder (same class names)")
      ("store", po::value(&args.store)->default_value(args.store),
       "imagefolder: encoded (the JPEG/PNG files, format version 2) or raw (S x S arrays)")
      ("resize", po::value(&args.resize)->default_value(args.resize),
       "imagefolder: S; raw: shorter side to S, centre crop S x S; encoded: the default crop size")
      ("skip-bad", po::bool_switch(&args.skip_bad), "imagefolder: skip undecodable files (listed in the manifest)")
      ("threads", po::value(&args.threads)->default_value(args.threads), "imagefolder: decoding threads")
      ("classes", po::value(&args.classes)->default_value(args.classes), "synthetic: classes")
      ("count", po::value(&args.count)->default_value(args.count), "synthetic: training samples")
      ("test-count", po::value(&args.test_count)->default_value(args.test_count), "synthetic: test samples")
      ("progress", po::value(&args.progress)->default_value(args.progress), "auto, bar, lines or none");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  if (args.out.empty()) throw mone::DataError("--out DIR is required (see --help)");
  if (!args.from.empty()) {
    if (!values["source"].defaulted()) throw mone::DataError("give --source or --from, not both");
    args.source = args.from;
  }

  mone::ConvertOptions convert;
  convert.out = args.out;
  convert.shard_size = args.shard_size;
  convert.validation_count = args.val_count;
  convert.seed = args.seed;
  convert.deflate_level = args.deflate;
  convert.progress = progress_style(args.progress);
  const mone::Manifest manifest =
      args.source == "imagefolder" ? convert_image_folder(args, convert) : mone::convert(load_source(args), convert);
  for (const auto& [split, shards] : manifest.splits) {
    int64_t samples = 0;
    for (const mone::ShardEntry& shard : shards) samples += shard.samples;
    std::cout << split << ": " << samples << " samples in " << shards.size() << " shards\n";
  }
  if (manifest.records_skipped) std::cout << "skipped " << manifest.skipped_files.size() << " undecodable files\n";
  std::cout << "wrote " << args.out << "\n";
  return 0;
}

}  // namespace

namespace mone {

int run_data_command(const std::string& program, const std::vector<std::string>& arguments) {
  try {
    return run(program, arguments);
  } catch (const std::exception& error) {  // Boost's parse errors included: they name the option
    std::cerr << program << ": error: " << error.what() << "\n";
  }
  return 1;
}

}  // namespace mone
