#include "trainer/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <ostream>
#include <regex>
#include <variant>

#include "data/checksum.h"
#include "data/hdf5.h"
#include "data/hdf5_reader.h"
#include "data/hdf5_writer.h"
#include "trainer/atomic_file.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "mone-checkpoint";

// The header: every attribute but the checksum, in one list that writing,
// reading and the checksum all walk, so no field resume reads can escape
// the checksum.
using HeaderValue = std::variant<int64_t, double, std::string>;
using Header = std::vector<std::pair<std::string, HeaderValue>>;

Header header_of(const Checkpoint& c) {
  Header header{{"format", std::string(kFormat)},
                {"version", kCheckpointVersion},
                {"model.arch", std::string(arch_name(c.model.arch))}};
  // Only the ablation's random router is written: a learned router's header
  // is the one its checkpoints always had, so their checksums still hold.
  if (c.model.router != Router::learned) header.emplace_back("model.router", router_name(c.model.router));
  if (c.model.gelu != Gelu::tanh) header.emplace_back("model.gelu", gelu_name(c.model.gelu));
  for (const auto& [field, value] : c.model.fields()) header.emplace_back("model." + field, value);
  const TrainingProgress& p = c.progress;
  header.insert(header.end(), {{"step", p.step},
                               {"epoch", p.epoch},
                               {"consumed_samples", p.consumed_samples},
                               {"world_size", p.world_size},
                               {"seed", static_cast<int64_t>(p.seed)},  // bits kept; read back as uint64
                               {"best_top1", p.best_top1},
                               {"best_step", p.best_step},
                               {"optimizer_step", c.optimizer_step},
                               {"config", c.config},
                               {"run_id", p.run_id},
                               {"dataset", p.dataset}});
  return header;
}

// "name=value\n" per field, doubles in hexadecimal (exact).
std::string header_text(const Header& header) {
  std::string text;
  for (const auto& [name, value] : header) {
    text += name + "=";
    if (const auto* i = std::get_if<int64_t>(&value)) {
      text += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      char hex[40];
      std::snprintf(hex, sizeof(hex), "%a", *d);
      text += hex;
    } else {
      text += std::get<std::string>(value);
    }
    text += "\n";
  }
  return text;
}

// CRC-32 over the header text (version 2 on), then the parameters and both
// moments as stored (little-endian float32).
uint32_t checksum(const std::string& header, const float* values, const float* m, const float* v, int64_t n) {
  Crc32 crc;
  crc.update(header.data(), header.size());
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  crc.update(values, bytes);
  crc.update(m, bytes);
  crc.update(v, bytes);
  return crc.value();
}

std::vector<unsigned char> checkpoint_image(const std::string& name, const Checkpoint& header_fields,
                                            const ParameterSet<float>& params, const AdamW& optimizer) {
  // The loaders' prefetch threads read HDF5 too; the data layer's lock
  // serialises every HDF5 call in the process.
  const auto hdf5 = h5::lock();
  Hdf5Writer writer(Hdf5Writer::InMemory{}, name);
  const Header header = header_of(header_fields);
  for (const auto& [field, value] : header) std::visit([&](const auto& v) { writer.write_attribute(field, v); }, value);
  const float* m = optimizer.first_moment().data();
  const float* v = optimizer.second_moment().data();
  writer.write_attribute("checksum",
                         static_cast<int64_t>(checksum(header_text(header), params.values(), m, v, params.numel())));
  for (const ParamInfo& info : params.infos()) {
    writer.write_dataset("/params/" + info.name, info.shape, params.values() + info.offset);
    writer.write_dataset("/optimizer/m/" + info.name, info.shape, m + info.offset);
    writer.write_dataset("/optimizer/v/" + info.name, info.shape, v + info.offset);
  }
  return writer.close_to_image();
}

Checkpoint header_fields(const ModelConfig& model, const TrainingProgress& progress, int64_t optimizer_step,
                         const std::string& config) {
  Checkpoint c;
  c.model = model;
  c.progress = progress;
  c.optimizer_step = optimizer_step;
  c.config = config;
  return c;
}

}  // namespace

void write_checkpoint(const fs::path& path, const ModelConfig& model, const ParameterSet<float>& params,
                      const AdamW& optimizer, const TrainingProgress& progress, const std::string& config) {
  const std::vector<unsigned char> image = checkpoint_image(
      path.string(), header_fields(model, progress, optimizer.step_count(), config), params, optimizer);
  write_file_atomically(path, image.data(), image.size());
}

uint64_t checkpoint_bytes(const ParameterSet<float>& params, const std::string& config) {
  // The state, plus HDF5's object headers (~1 kB per dataset) and the attributes.
  return 3 * static_cast<uint64_t>(params.numel()) * sizeof(float) + 3 * params.infos().size() * 1024 +
         config.size() + 16384;
}

Checkpoint read_checkpoint(const fs::path& path) {
  const std::string name = path.string();
  try {
    const auto hdf5 = h5::lock();
    const Hdf5Reader reader(name);
    if (!reader.has_attribute("format") || reader.read_string_attribute("format") != kFormat) {
      throw CheckpointError("'" + name + "' is not a mone checkpoint (no format = " + kFormat + ")");
    }
    const int64_t version = reader.read_int_attribute("version");
    if (version != 1 && version != kCheckpointVersion) {
      throw CheckpointError("'" + name + "' has checkpoint version " + std::to_string(version) +
                            "; this build reads versions 1 and " + std::to_string(kCheckpointVersion));
    }
    Checkpoint checkpoint;
    // Checkpoints from before V-MoE have no arch: they are MoNE's. The arch
    // says which fields follow.
    if (reader.has_attribute("model.arch"))
      checkpoint.model.arch = parse_arch(reader.read_string_attribute("model.arch"));
    if (reader.has_attribute("model.router"))  // absent for the learned router
      checkpoint.model.router = parse_router(reader.read_string_attribute("model.router"));
    if (reader.has_attribute("model.gelu"))  // absent for the tanh GELU
      checkpoint.model.gelu = parse_gelu(reader.read_string_attribute("model.gelu"));
    for (const auto& [field, value] : checkpoint.model.fields()) {
      checkpoint.model.set(field, reader.read_int_attribute("model." + field));
    }
    checkpoint.model.validate();
    checkpoint.progress.step = reader.read_int_attribute("step");
    checkpoint.progress.epoch = reader.read_int_attribute("epoch");
    checkpoint.progress.consumed_samples = reader.read_int_attribute("consumed_samples");
    checkpoint.progress.world_size = reader.read_int_attribute("world_size");
    checkpoint.progress.seed = static_cast<uint64_t>(reader.read_int_attribute("seed"));
    if (reader.has_attribute("best_step")) {  // absent in the first checkpoints of version 1
      checkpoint.progress.best_top1 = reader.read_double_attribute("best_top1");
      checkpoint.progress.best_step = reader.read_int_attribute("best_step");
    }
    checkpoint.optimizer_step = reader.read_int_attribute("optimizer_step");
    checkpoint.config = reader.read_string_attribute("config");
    if (version >= 2) {
      checkpoint.progress.run_id = reader.read_string_attribute("run_id");
      checkpoint.progress.dataset = reader.read_string_attribute("dataset");
    }

    const ParameterSet<float> layout(checkpoint.model);
    const size_t n = static_cast<size_t>(layout.numel());
    checkpoint.values.resize(n);
    checkpoint.first_moment.resize(n);
    checkpoint.second_moment.resize(n);
    for (const ParamInfo& info : layout.infos()) {
      reader.read_dataset("/params/" + info.name, info.shape, checkpoint.values.data() + info.offset);
      reader.read_dataset("/optimizer/m/" + info.name, info.shape, checkpoint.first_moment.data() + info.offset);
      reader.read_dataset("/optimizer/v/" + info.name, info.shape, checkpoint.second_moment.data() + info.offset);
    }
    // Version 1 covered the state only; from version 2 on, the header too.
    const std::string header = version >= 2 ? header_text(header_of(checkpoint)) : std::string();
    const uint32_t expected = static_cast<uint32_t>(reader.read_int_attribute("checksum"));
    const uint32_t actual = checksum(header, checkpoint.values.data(), checkpoint.first_moment.data(),
                                     checkpoint.second_moment.data(), layout.numel());
    if (actual != expected) {
      throw CheckpointError("'" + name + "' is corrupt: its checksum does not match its " +
                            (version >= 2 ? "header and contents" : "contents"));
    }
    return checkpoint;
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& error) {  // DataError (HDF5), ConfigError
    throw CheckpointError("cannot read checkpoint '" + name + "': " + error.what());
  }
}

std::vector<std::string> model_differences(const ModelConfig& checkpoint, const ModelConfig& run) {
  // Another architecture: its fields are not comparable, and that is the whole story.
  if (checkpoint.arch != run.arch)
    return {"arch: checkpoint " + arch_name(checkpoint.arch) + ", this run " + arch_name(run.arch) +
            " (a checkpoint trains on only in its own architecture)"};
  std::vector<std::string> differences;
  if (checkpoint.router != run.router)
    differences.push_back("router: checkpoint " + router_name(checkpoint.router) + ", this run " +
                          router_name(run.router));
  if (checkpoint.gelu != run.gelu)
    differences.push_back("gelu: checkpoint " + gelu_name(checkpoint.gelu) + ", this run " + gelu_name(run.gelu));
  const auto theirs = checkpoint.fields();
  const auto ours = run.fields();
  for (size_t i = 0; i < theirs.size(); ++i) {
    if (theirs[i].second != ours[i].second) {
      differences.push_back(theirs[i].first + ": checkpoint " + std::to_string(theirs[i].second) + ", this run " +
                            std::to_string(ours[i].second));
    }
  }
  return differences;
}

CheckpointDirectory::CheckpointDirectory(const fs::path& run_dir) : dir_(run_dir / "checkpoints") {}

fs::path CheckpointDirectory::path_for(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld.h5", static_cast<long long>(step));
  return dir_ / name;
}

std::vector<fs::path> CheckpointDirectory::list() const {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir_)) return files;
  static const std::regex pattern("step-[0-9]{8,}\\.h5");
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
    if (std::regex_match(entry.path().filename().string(), pattern)) files.push_back(entry.path());
  }
  // Equal-width numbers sort by name; a longer name is a larger step.
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    const std::string x = a.filename().string(), y = b.filename().string();
    return x.size() != y.size() ? x.size() < y.size() : x < y;
  });
  return files;
}

fs::path CheckpointDirectory::best_path() const { return dir_ / "best.h5"; }

fs::path CheckpointDirectory::save_best(const ModelConfig& model, const ParameterSet<float>& params,
                                        const AdamW& optimizer, const TrainingProgress& progress,
                                        const std::string& config) const {
  fs::create_directories(dir_);
  write_checkpoint(best_path(), model, params, optimizer, progress, config);
  return best_path();
}

fs::path CheckpointDirectory::save(const ModelConfig& model, const ParameterSet<float>& params,
                                   const AdamW& optimizer, const TrainingProgress& progress,
                                   const std::string& config, int64_t keep) const {
  fs::create_directories(dir_);
  const fs::path path = path_for(progress.step);
  write_checkpoint(path, model, params, optimizer, progress, config);
  const std::vector<fs::path> files = list();
  const size_t kept = static_cast<size_t>(std::max<int64_t>(1, keep));
  for (size_t i = 0; i + kept < files.size(); ++i) fs::remove(files[i]);
  return path;
}

std::optional<Checkpoint> CheckpointDirectory::newest_valid(std::ostream& warnings) const {
  const std::vector<fs::path> files = list();
  for (auto file = files.rbegin(); file != files.rend(); ++file) {
    try {
      return read_checkpoint(*file);
    } catch (const CheckpointError& error) {
      warnings << "warning: skipping checkpoint: " << error.what() << "\n";
    }
  }
  if (!files.empty()) {
    throw CheckpointError("none of the " + std::to_string(files.size()) + " checkpoints in '" + dir_.string() +
                          "' is usable (see the warnings); pass --resume none --overwrite to start over (moves them "
                          "aside)");
  }
  return std::nullopt;
}

Checkpoint read_checkpoint_or_newest(const fs::path& file_or_run_dir, std::ostream& warnings) {
  if (!fs::is_directory(file_or_run_dir)) return read_checkpoint(file_or_run_dir);
  std::optional<Checkpoint> newest = CheckpointDirectory(file_or_run_dir).newest_valid(warnings);
  if (!newest) throw CheckpointError("'" + file_or_run_dir.string() + "' holds no checkpoints");
  return std::move(*newest);
}

}  // namespace mone
