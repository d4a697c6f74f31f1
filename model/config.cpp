#include "model/config.h"

#include <sstream>

namespace mone {

namespace {
std::string describe(const ModelConfig& c) {
  std::ostringstream out;
  out << "(dim=" << c.dim << ", heads=" << c.heads << ", experts=" << c.experts << ", image="
      << c.image_height << "x" << c.image_width << "x" << c.channels << ", patch=" << c.patch << ")";
  return out.str();
}
void require(bool ok, const std::string& message) {
  if (!ok) throw ConfigError(message);
}
}  // namespace

void ModelConfig::validate() const {
  for (const auto& [name, value] : fields())
    require(value > 0, "model config: " + name + " must be positive, got " + std::to_string(value));
  require(experts <= 16, "model config: experts must be at most 16, got " + std::to_string(experts));
  require(dim % heads == 0, "model config: dim (" + std::to_string(dim) +
                                ") must be divisible by heads (" + std::to_string(heads) + ") " + describe(*this));
  const int64_t smallest = int64_t{1} << (experts - 1);
  require(dim % smallest == 0, "model config: dim (" + std::to_string(dim) + ") must be divisible by 2^(experts-1) = " +
                                   std::to_string(smallest) + " so every nested expert has a whole width " +
                                   describe(*this));
  require(image_height % patch == 0, "model config: image_height (" + std::to_string(image_height) +
                                         ") must be divisible by patch (" + std::to_string(patch) + ")");
  require(image_width % patch == 0, "model config: image_width (" + std::to_string(image_width) +
                                        ") must be divisible by patch (" + std::to_string(patch) + ")");
}

std::vector<std::pair<std::string, int64_t>> ModelConfig::fields() const {
  return {{"image_height", image_height}, {"image_width", image_width}, {"channels", channels},
          {"patch", patch},               {"dim", dim},                 {"depth", depth},
          {"heads", heads},               {"experts", experts},         {"classes", classes},
          {"mlp_ratio", mlp_ratio}};
}

void ModelConfig::set(const std::string& field, int64_t value) {
  int64_t* slots[] = {&image_height, &image_width, &channels, &patch, &dim,
                      &depth,        &heads,       &experts,  &classes, &mlp_ratio};
  const auto names = fields();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].first == field) {
      *slots[i] = value;
      return;
    }
  }
  std::string known;
  for (const auto& [name, unused] : names) known += (known.empty() ? "" : ", ") + name;
  throw ConfigError("model config: unknown field '" + field + "' (known: " + known + ")");
}

ModelConfig preset_config(const std::string& name) {
  ModelConfig c;  // the defaults are "tiny"
  if (name == "tiny") return c;
  if (name == "s16" || name == "b16") {
    c.image_height = c.image_width = 224;
    c.channels = 3;
    c.patch = 16;
    c.depth = 12;
    c.classes = 1000;
    c.dim = name == "s16" ? 384 : 768;
    c.heads = name == "s16" ? 6 : 12;
    return c;
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("model config: unknown preset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> preset_names() { return {"tiny", "s16", "b16"}; }

}  // namespace mone
