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

std::string arch_name(Arch arch) { return arch == Arch::vmoe ? "vmoe" : "mone"; }

Arch parse_arch(const std::string& name) {
  if (name == "mone") return Arch::mone;
  if (name == "vmoe") return Arch::vmoe;
  throw ConfigError("model config: unknown arch '" + name + "' (known: mone, vmoe)");
}

std::string router_name(Router router) { return router == Router::learned ? "learned" : "random"; }

Router parse_router(const std::string& name) {
  if (name == "learned") return Router::learned;
  if (name == "random") return Router::random;
  throw ConfigError("model config: unknown router '" + name + "' (known: learned, random)");
}

std::string gelu_name(Gelu gelu) { return gelu == Gelu::tanh ? "tanh" : "erf"; }

Gelu parse_gelu(const std::string& name) {
  if (name == "tanh") return Gelu::tanh;
  if (name == "erf") return Gelu::erf;
  throw ConfigError("model config: unknown gelu '" + name + "' (known: tanh, erf)");
}

void ModelConfig::validate() const {
  for (const auto& [name, value] : fields())
    require(value > 0, "model config: " + name + " must be positive, got " + std::to_string(value));
  require(experts <= 16, "model config: experts must be at most 16, got " + std::to_string(experts));
  require(dim % heads == 0, "model config: dim (" + std::to_string(dim) +
                                ") must be divisible by heads (" + std::to_string(heads) + ") " + describe(*this));
  require(!is_vmoe() || router == Router::learned, "model config: the random router is MoNE's (arch mone)");
  if (is_vmoe()) {
    require(moe_blocks <= depth, "model config: moe_blocks (" + std::to_string(moe_blocks) +
                                     ") must be at most depth (" + std::to_string(depth) + ")");
    require(top_k <= experts, "model config: top_k (" + std::to_string(top_k) + ") must be at most experts (" +
                                  std::to_string(experts) + ")");
  } else {
    validate_nested_widths();
  }
  require(image_height % patch == 0, "model config: image_height (" + std::to_string(image_height) +
                                         ") must be divisible by patch (" + std::to_string(patch) + ")");
  require(image_width % patch == 0, "model config: image_width (" + std::to_string(image_width) +
                                        ") must be divisible by patch (" + std::to_string(patch) + ")");
}

// MoNE's experts are slices of one width: every d_j must be whole.
void ModelConfig::validate_nested_widths() const {
  const int64_t smallest = int64_t{1} << (experts - 1);
  require(dim % smallest == 0, "model config: dim (" + std::to_string(dim) + ") must be divisible by 2^(experts-1) = " +
                                   std::to_string(smallest) + " so every nested expert has a whole width " +
                                   describe(*this));
}

std::vector<std::pair<std::string, int64_t>> ModelConfig::fields() const {
  std::vector<std::pair<std::string, int64_t>> shape = {
      {"image_height", image_height}, {"image_width", image_width}, {"channels", channels},
      {"patch", patch},               {"dim", dim},                 {"depth", depth},
      {"heads", heads},               {"experts", experts},         {"classes", classes},
      {"mlp_ratio", mlp_ratio}};
  if (is_vmoe()) shape.insert(shape.end(), {{"moe_blocks", moe_blocks}, {"top_k", top_k}});
  return shape;
}

void ModelConfig::set(const std::string& field, int64_t value) {
  const std::pair<const char*, int64_t*> slots[] = {
      {"image_height", &image_height}, {"image_width", &image_width}, {"channels", &channels},
      {"patch", &patch},               {"dim", &dim},                 {"depth", &depth},
      {"heads", &heads},               {"experts", &experts},         {"classes", &classes},
      {"mlp_ratio", &mlp_ratio},       {"moe_blocks", &moe_blocks},   {"top_k", &top_k}};
  for (const auto& [name, slot] : slots) {
    if (field == name) {
      *slot = value;
      return;
    }
  }
  std::string known;
  for (const auto& [name, unused] : slots) known += (known.empty() ? "" : ", ") + std::string(name);
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
