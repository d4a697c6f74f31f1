// Model configuration: the architecture (MoNE or Mobile V-MoE) and the shape
// of the ViT, named presets, validation.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mone {

// Thrown for an invalid configuration; the message names the field.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the blocks' MLPs are (method page): MoNE's nested experts with token
// routing (section 1), or Mobile V-MoE's full MLP experts with per-image
// routing in the last blocks (section 5).
enum class Arch { mone, vmoe };
std::string arch_name(Arch arch);
// "mone" | "vmoe"; throws ConfigError for anything else.
Arch parse_arch(const std::string& name);

// How MoNE's tokens are assigned to experts (method page, "Random router"):
// by Expert Preferred Routing on the learned router's probabilities, or by a
// random permutation of each image's tokens (the ablation that shows the
// router learns). The router's probabilities still scale the MLPs.
enum class Router { learned, random };
std::string router_name(Router router);
// "learned" | "random"; throws ConfigError for anything else.
Router parse_router(const std::string& name);

// The MLP's GELU (method page): the tanh approximation (PyTorch
// approximate='tanh', ours) or the exact erf form (torchvision's ViT).
enum class Gelu { tanh, erf };
std::string gelu_name(Gelu gelu);
// "tanh" | "erf"; throws ConfigError for anything else.
Gelu parse_gelu(const std::string& name);

struct ModelConfig {
  Arch arch = Arch::mone;
  Router router = Router::learned;
  Gelu gelu = Gelu::tanh;
  int64_t image_height = 28;
  int64_t image_width = 28;
  int64_t channels = 1;
  int64_t patch = 4;
  int64_t dim = 64;        // D, width of the residual stream
  int64_t depth = 6;       // L, encoder blocks
  int64_t heads = 4;
  int64_t experts = 4;     // E: MoNE's nested experts (expert E is the full width); V-MoE's MLP experts
  int64_t classes = 10;
  int64_t mlp_ratio = 4;   // hidden width = mlp_ratio * D for every expert
  // V-MoE only: the last moe_blocks blocks have E experts; each image takes top_k of them.
  int64_t moe_blocks = 2;
  int64_t top_k = 1;

  int64_t tokens() const { return (image_height / patch) * (image_width / patch); }
  int64_t patch_dim() const { return patch * patch * channels; }
  int64_t head_dim() const { return dim / heads; }
  int64_t hidden() const { return mlp_ratio * dim; }
  // Width d_j = D / 2^(E-j) of expert j, j = 1 (smallest) .. E (full).
  int64_t expert_width(int64_t j) const { return dim >> (experts - j); }
  bool is_vmoe() const { return arch == Arch::vmoe; }
  // V-MoE: block l has an MoE MLP (l >= depth - moe_blocks); the router sits at the first.
  int64_t first_moe_block() const { return depth - moe_blocks; }
  bool is_moe_block(int64_t l) const { return is_vmoe() && l >= first_moe_block(); }

  // Throws ConfigError naming the first offending field.
  void validate() const;
  // "name=value" pairs for tables, check files and checkpoints: the shape
  // fields, and for V-MoE moe_blocks and top_k too (the arch is not a number
  // and is stored beside them).
  std::vector<std::pair<std::string, int64_t>> fields() const;
  // Sets one field by name (moe_blocks and top_k whatever the arch); throws
  // ConfigError for an unknown name.
  void set(const std::string& field, int64_t value);

 private:
  void validate_nested_widths() const;
};

// Presets: "tiny" (28x28x1, patch 4, D 64, depth 6, 4 heads, E 4, 10 classes),
// "s16" (ViT-S/16 at 224x224x3), "b16" (ViT-B/16 at 224x224x3).
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace mone
