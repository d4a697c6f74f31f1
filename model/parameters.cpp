#include "model/parameters.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/random.h"

namespace mone {

const ParamInfo& find_parameter(const std::vector<ParamInfo>& infos, const std::string& name) {
  auto it = std::find_if(infos.begin(), infos.end(), [&](const ParamInfo& p) { return p.name == name; });
  if (it == infos.end()) throw std::out_of_range("no parameter named '" + name + "'");
  return *it;
}

namespace {
// Every parameter of the model in forward order: the gradient buffer is
// filled in roughly the reverse of this order during backward.
std::vector<ParamInfo> layout_of(const ModelConfig& c) {
  std::vector<ParamInfo> infos;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind,
                 FanInInit fan_in_init = FanInInit::by_kind) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (fan_in_init == FanInInit::by_kind && kind == ParamKind::bias) fan_in_init = FanInInit::zero;
    infos.push_back({std::move(name), std::move(shape), offset, numel, kind, fan_in_init});
    offset += numel;
  };
  const int64_t D = c.dim;
  add("patch_embed.weight", {c.patch_dim(), D}, ParamKind::weight, FanInInit::normal_fan_in);
  add("patch_embed.bias", {D}, ParamKind::bias);
  add("pos_embed", {c.tokens(), D}, ParamKind::position);
  const auto add_router = [&] {
    add("router.weight", {D, c.experts}, ParamKind::router_weight);
    add("router.bias", {c.experts}, ParamKind::bias);
  };
  // MoNE routes tokens before the first block; V-MoE routes images at the
  // first MoE block, whose backward finishes just before the router's.
  if (!c.is_vmoe()) add_router();
  for (int64_t l = 0; l < c.depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    if (c.is_vmoe() && l == c.first_moe_block()) add_router();
    add(p + "norm1.weight", {D}, ParamKind::norm_gain);
    add(p + "norm1.bias", {D}, ParamKind::norm_bias);
    add(p + "attn.qkv.weight", {D, 3 * D}, ParamKind::weight, FanInInit::xavier_uniform);
    add(p + "attn.qkv.bias", {3 * D}, ParamKind::bias);
    add(p + "attn.proj.weight", {D, D}, ParamKind::weight, FanInInit::uniform_fan_in);
    add(p + "attn.proj.bias", {D}, ParamKind::bias);
    add(p + "norm2.weight", {D}, ParamKind::norm_gain);
    add(p + "norm2.bias", {D}, ParamKind::norm_bias);
    if (c.is_moe_block(l)) {
      // E full MLPs stacked: expert e's fc1 weight is the e-th [D, hidden] slab.
      add(p + "moe.fc1.weight", {c.experts, D, c.hidden()}, ParamKind::weight, FanInInit::xavier_uniform);
      add(p + "moe.fc1.bias", {c.experts, c.hidden()}, ParamKind::bias, FanInInit::near_zero);
      add(p + "moe.fc2.weight", {c.experts, c.hidden(), D}, ParamKind::weight, FanInInit::xavier_uniform);
      add(p + "moe.fc2.bias", {c.experts, D}, ParamKind::bias, FanInInit::near_zero);
      continue;
    }
    add(p + "mlp.fc1.weight", {D, c.hidden()}, ParamKind::weight, FanInInit::xavier_uniform);
    add(p + "mlp.fc1.bias", {c.hidden()}, ParamKind::bias, FanInInit::near_zero);
    add(p + "mlp.fc2.weight", {c.hidden(), D}, ParamKind::weight, FanInInit::xavier_uniform);
    add(p + "mlp.fc2.bias", {D}, ParamKind::bias, FanInInit::near_zero);
    if (!c.is_vmoe()) add(p + "alpha", {1}, ParamKind::alpha);  // V-MoE's blocks have no MLP scale
  }
  add("norm.weight", {D}, ParamKind::norm_gain);
  add("norm.bias", {D}, ParamKind::norm_bias);
  add("head.weight", {D, c.classes}, ParamKind::weight, FanInInit::zero);
  add("head.bias", {c.classes}, ParamKind::bias);
  return infos;
}

// Normal draw truncated to [-2 std, 2 std] by redrawing (the timm convention).
double truncated_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  for (uint64_t attempt = 0;; ++attempt) {
    const double z = random_normal(seed, stream, index * 64 + attempt);
    if (std::fabs(z) <= 2.0) return z;
  }
}
// Element e of parameter p by its kind: the `small` scheme, and the `fan-in`
// scheme's parameters that are not scaled by their fan-in.
double small_init(const ParamInfo& p, uint64_t seed, uint64_t stream, int64_t e) {
  switch (p.kind) {
    case ParamKind::weight:
    case ParamKind::position: return kInitStd * truncated_normal(seed, stream, e);
    case ParamKind::router_weight: return kInitStd * random_normal(seed, stream, e);
    case ParamKind::norm_gain: return 1;
    case ParamKind::bias:
    case ParamKind::norm_bias:
    case ParamKind::alpha: return 0;
  }
  return 0;
}

// Weights are [fan_in, fan_out], stacked experts [E, fan_in, fan_out].
double fan_in_init(const ParamInfo& p, uint64_t seed, uint64_t stream, int64_t e) {
  const size_t rank = p.shape.size();
  const double fan_in = rank >= 2 ? static_cast<double>(p.shape[rank - 2]) : 1.0;
  const double fan_out = static_cast<double>(p.shape[rank - 1]);
  const auto uniform = [&](double bound) { return bound * (2 * random_uniform(seed, stream, e) - 1); };
  switch (p.fan_in_init) {
    case FanInInit::by_kind: return small_init(p, seed, stream, e);
    case FanInInit::normal_fan_in: return std::sqrt(1 / fan_in) * truncated_normal(seed, stream, e);
    case FanInInit::xavier_uniform: return uniform(std::sqrt(6 / (fan_in + fan_out)));
    case FanInInit::uniform_fan_in: return uniform(std::sqrt(1 / fan_in));
    case FanInInit::near_zero: return 1e-6 * random_normal(seed, stream, e);
    case FanInInit::zero: return 0;
  }
  return 0;
}
}  // namespace

std::string init_scheme_name(InitScheme scheme) { return scheme == InitScheme::small ? "small" : "fan-in"; }

InitScheme parse_init_scheme(const std::string& name) {
  if (name == "small") return InitScheme::small;
  if (name == "fan-in") return InitScheme::fan_in;
  throw std::invalid_argument("'" + name + "' is not an initialisation (small | fan-in)");
}

template <class T>
ParameterSet<T>::ParameterSet(const ModelConfig& config) : infos_(layout_of(config)) {
  const int64_t total = infos_.empty() ? 0 : infos_.back().offset + infos_.back().numel;
  values_.assign(total, T(0));
  grads_.assign(total, T(0));
}

template <class T>
const ParamInfo& ParameterSet<T>::info(const std::string& name) const {
  return find_parameter(infos_, name);
}

template <class T>
void ParameterSet<T>::initialise(uint64_t seed, InitScheme scheme) {
  for (size_t i = 0; i < infos_.size(); ++i) {
    const ParamInfo& p = infos_[i];
    T* v = values_.data() + p.offset;
    // One random stream per parameter: adding a parameter never shifts another's values.
    const uint64_t stream = i;
    for (int64_t e = 0; e < p.numel; ++e)
      v[e] = static_cast<T>(scheme == InitScheme::small ? small_init(p, seed, stream, e) : fan_in_init(p, seed, stream, e));
  }
  zero_grads();
}

template <class T>
void ParameterSet<T>::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template class ParameterSet<float>;
template class ParameterSet<double>;

}  // namespace mone
