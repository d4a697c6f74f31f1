// Parameters in one contiguous buffer and their gradients in another, with
// named views ("blocks.3.mlp.fc1.weight"). The order is the order of the
// forward pass, so a bucketed allreduce walks the gradient buffer backwards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/tensor.h"

namespace mone {

// How a parameter is initialised and regularised.
// Standard deviation of the initial weights, position embedding and router
// weight (method page).
constexpr double kInitStd = 0.02;

enum class ParamKind {
  weight,        // truncated normal std kInitStd, decayed
  router_weight, // normal std kInitStd (method page), decayed
  bias,          // 0, not decayed
  norm_gain,     // 1, not decayed
  norm_bias,     // 0, not decayed
  position,      // truncated normal std kInitStd, not decayed
  alpha,         // 0, not decayed
};

// How the `fan-in` initialisation scheme draws a parameter (method page,
// "Initialisation"); `small` draws by ParamKind alone.
enum class FanInInit {
  by_kind,          // as in the `small` scheme (norms, router, position, alpha)
  normal_fan_in,    // truncated normal, std sqrt(1 / fan_in): the patch embedding
  xavier_uniform,   // U(-a, a), a = sqrt(6 / (fan_in + fan_out)): qkv, MLP
  uniform_fan_in,   // U(-a, a), a = sqrt(1 / fan_in): the attention output projection
  near_zero,        // normal std 1e-6: the MLP biases
  zero,             // the head, its bias and the other biases
};

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements into the buffers
  int64_t numel = 0;
  ParamKind kind = ParamKind::weight;
  FanInInit fan_in_init = FanInInit::by_kind;
};

// The initialisation schemes (`mone train --init`):
// - small: every weight truncated normal with std kInitStd (the first recipe;
//   the tests use it, because every gradient is non-zero at step 0);
// - fan_in: weights scaled by their fan-in and fan-out, a zero head (FanInInit).
enum class InitScheme { small, fan_in };
std::string init_scheme_name(InitScheme scheme);
// "small" | "fan-in"; throws std::invalid_argument for anything else.
InitScheme parse_init_scheme(const std::string& name);

// The entry of `infos` named `name`; throws std::out_of_range for unknown names.
const ParamInfo& find_parameter(const std::vector<ParamInfo>& infos, const std::string& name);

template <class T>
class ParameterSet {
 public:
  explicit ParameterSet(const ModelConfig& config);

  const std::vector<ParamInfo>& infos() const { return infos_; }
  int64_t numel() const { return static_cast<int64_t>(values_.size()); }
  T* values() { return values_.data(); }
  const T* values() const { return values_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }

  const ParamInfo& info(const std::string& name) const;  // throws for unknown names
  T* value(const std::string& name) { return values_.data() + info(name).offset; }
  T* grad(const std::string& name) { return grads_.data() + info(name).offset; }

  // Deterministic initialisation from a seed (method page, ParamKind and FanInInit).
  void initialise(uint64_t seed, InitScheme scheme);
  void zero_grads();

 private:
  std::vector<ParamInfo> infos_;
  std::vector<T> values_;
  std::vector<T> grads_;
};

}  // namespace mone
