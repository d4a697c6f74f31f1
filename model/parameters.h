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

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // elements into the buffers
  int64_t numel = 0;
  ParamKind kind = ParamKind::weight;
};

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

  // Deterministic initialisation from a seed (method page and ParamKind).
  void initialise(uint64_t seed);
  void zero_grads();

 private:
  std::vector<ParamInfo> infos_;
  std::vector<T> values_;
  std::vector<T> grads_;
};

}  // namespace mone
