// The parameter set: the names and shapes of docs/check-file.md in forward
// order, one contiguous buffer, the parameter count of a dense ViT plus the
// router, and the initialisation the method page prescribes.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/parameters.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

struct ExpectedParam {
  std::string name;
  std::vector<int64_t> shape;
  ParamKind kind;
};

// docs/check-file.md, "Parameter names and shapes", in forward order.
std::vector<ExpectedParam> documented_layout(const ModelConfig& c) {
  const int64_t D = c.dim, E = c.experts;
  std::vector<ExpectedParam> p = {{"patch_embed.weight", {c.patch_dim(), D}, ParamKind::weight},
                                  {"patch_embed.bias", {D}, ParamKind::bias},
                                  {"pos_embed", {c.tokens(), D}, ParamKind::position},
                                  {"router.weight", {D, E}, ParamKind::router_weight},
                                  {"router.bias", {E}, ParamKind::bias}};
  for (int64_t l = 0; l < c.depth; ++l) {
    auto name = [&](const char* suffix) { return testing::block_param(l, suffix); };
    p.push_back({name("norm1.weight"), {D}, ParamKind::norm_gain});
    p.push_back({name("norm1.bias"), {D}, ParamKind::norm_bias});
    p.push_back({name("attn.qkv.weight"), {D, 3 * D}, ParamKind::weight});
    p.push_back({name("attn.qkv.bias"), {3 * D}, ParamKind::bias});
    p.push_back({name("attn.proj.weight"), {D, D}, ParamKind::weight});
    p.push_back({name("attn.proj.bias"), {D}, ParamKind::bias});
    p.push_back({name("norm2.weight"), {D}, ParamKind::norm_gain});
    p.push_back({name("norm2.bias"), {D}, ParamKind::norm_bias});
    p.push_back({name("mlp.fc1.weight"), {D, 4 * D}, ParamKind::weight});
    p.push_back({name("mlp.fc1.bias"), {4 * D}, ParamKind::bias});
    p.push_back({name("mlp.fc2.weight"), {4 * D, D}, ParamKind::weight});
    p.push_back({name("mlp.fc2.bias"), {D}, ParamKind::bias});
    p.push_back({name("alpha"), {1}, ParamKind::alpha});
  }
  p.push_back({"norm.weight", {D}, ParamKind::norm_gain});
  p.push_back({"norm.bias", {D}, ParamKind::norm_bias});
  p.push_back({"head.weight", {D, c.classes}, ParamKind::weight});
  p.push_back({"head.bias", {c.classes}, ParamKind::bias});
  return p;
}

TEST(Parameters, DocumentedNamesShapesAndOrderInOneBuffer) {
  const ModelConfig config = testing::small_config();
  ParameterSet<float> params(config);
  const std::vector<ExpectedParam> expected = documented_layout(config);
  ASSERT_EQ(params.infos().size(), expected.size());
  int64_t offset = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const ParamInfo& info = params.infos()[i];
    EXPECT_EQ(info.name, expected[i].name) << "position " << i;
    EXPECT_EQ(info.shape, expected[i].shape) << info.name;
    EXPECT_EQ(info.kind, expected[i].kind) << info.name;
    EXPECT_EQ(info.offset, offset) << info.name << ": not contiguous";
    int64_t numel = 1;
    for (int64_t d : expected[i].shape) numel *= d;
    EXPECT_EQ(info.numel, numel) << info.name;
    offset += numel;
  }
  EXPECT_EQ(params.numel(), offset);
  EXPECT_EQ(params.value("head.bias"), params.values() + params.info("head.bias").offset);
  EXPECT_EQ(params.grad("head.bias"), params.grads() + params.info("head.bias").offset);
  EXPECT_ANY_THROW(params.info("blocks.9.alpha"));
}

TEST(Parameters, CountIsDenseViTPlusRouterAndAlphas) {
  // The experts share the dense weights: a dense pre-LN ViT without CLS token
  // has P*P*C*D + D + N*D + L*(12 D^2 + 13 D) + 2D + D*classes + classes
  // parameters; MoNE adds the router (D*E + E) and one alpha per block.
  const ModelConfig c = preset_config("tiny");
  const int64_t D = c.dim, L = c.depth;
  const int64_t dense = c.patch_dim() * D + D + c.tokens() * D + L * (12 * D * D + 13 * D) + 2 * D +
                        D * c.classes + c.classes;
  EXPECT_EQ(ParameterSet<float>(c).numel(), dense + D * c.experts + c.experts + L);
}

TEST(Parameters, InitialisationFollowsTheMethodPage) {
  const ModelConfig config = preset_config("tiny");
  ParameterSet<double> params(config);
  params.initialise(5, InitScheme::small);
  for (const ParamInfo& info : params.infos()) {
    const double* v = params.value(info.name);
    double sum = 0, squares = 0, largest = 0;
    for (int64_t i = 0; i < info.numel; ++i) {
      sum += v[i];
      squares += v[i] * v[i];
      largest = std::max(largest, std::abs(v[i]));
    }
    const double mean = sum / info.numel, std = std::sqrt(squares / info.numel - mean * mean);
    switch (info.kind) {
      case ParamKind::bias:
      case ParamKind::norm_bias:
      case ParamKind::alpha:  // alpha_l = 0: the model starts as a plain ViT
        EXPECT_EQ(largest, 0.0) << info.name;
        break;
      case ParamKind::norm_gain:
        for (int64_t i = 0; i < info.numel; ++i) ASSERT_EQ(v[i], 1.0) << info.name;
        break;
      case ParamKind::weight:
      case ParamKind::router_weight:
      case ParamKind::position:
        // std 0.02 (truncated normals a little less); only tensors large
        // enough for the estimate to be tight.
        if (info.numel >= 256) {
          EXPECT_NEAR(mean, 0.0, 0.004) << info.name;
          EXPECT_GT(std, 0.014) << info.name;
          EXPECT_LT(std, 0.024) << info.name;
        }
        EXPECT_GT(largest, 0.0) << info.name;
        break;
    }
  }
}

// The fan-in scheme (method page, "Initialisation"), tensor by tensor on
// `tiny` (D 64, hidden 256, patch dim 16): each std against its rule, the
// uniforms within their bound, the zero head, and what it shares with `small`.
TEST(Parameters, FanInInitialisationFollowsTheMethodPage) {
  const ModelConfig config = preset_config("tiny");
  ParameterSet<double> params(config), small(config);
  params.initialise(5, InitScheme::fan_in);
  small.initialise(5, InitScheme::small);
  const auto stats = [&](const std::string& name) {
    const ParamInfo& info = params.info(name);
    const double* v = params.value(name);
    double squares = 0, largest = 0;
    for (int64_t i = 0; i < info.numel; ++i) squares += v[i] * v[i], largest = std::max(largest, std::abs(v[i]));
    return std::make_pair(std::sqrt(squares / static_cast<double>(info.numel)), largest);
  };
  const auto expect_std = [&](const std::string& name, double std, double largest_bound) {
    const auto [measured, largest] = stats(name);
    EXPECT_NEAR(measured, std, 0.08 * std) << name;
    EXPECT_LE(largest, largest_bound) << name;
  };
  // Truncated at 2 std: std * 0.88 (the truncated normal's), at most 2 std.
  expect_std("patch_embed.weight", 0.25 * 0.88, 0.5);
  const double qkv = std::sqrt(6.0 / (64 + 192)), fc = std::sqrt(6.0 / (64 + 256)), proj = std::sqrt(1.0 / 64);
  for (const std::string block : {"blocks.0.", "blocks.5."}) {
    expect_std(block + "attn.qkv.weight", qkv / std::sqrt(3.0), qkv);  // U(-a, a) has std a / sqrt(3)
    expect_std(block + "attn.proj.weight", proj / std::sqrt(3.0), proj);
    expect_std(block + "mlp.fc1.weight", fc / std::sqrt(3.0), fc);
    expect_std(block + "mlp.fc2.weight", fc / std::sqrt(3.0), fc);
    expect_std(block + "mlp.fc1.bias", 1e-6, 1e-5);
    EXPECT_EQ(stats(block + "attn.qkv.bias").second, 0.0);
    EXPECT_EQ(*params.value(block + "alpha"), 0.0);
  }
  EXPECT_EQ(stats("head.weight").second, 0.0);
  EXPECT_EQ(stats("head.bias").second, 0.0);
  for (const std::string name : {"pos_embed", "router.weight", "norm.weight", "blocks.2.norm1.weight"}) {
    const ParamInfo& info = params.info(name);
    EXPECT_TRUE(std::equal(params.value(name), params.value(name) + info.numel, small.value(name))) << name;
  }
  EXPECT_EQ(parse_init_scheme("fan-in"), InitScheme::fan_in);
  EXPECT_EQ(init_scheme_name(InitScheme::small), "small");
  EXPECT_THROW(parse_init_scheme("xavier"), std::invalid_argument);
}

TEST(Parameters, InitialisationIsAFunctionOfTheSeed) {
  const ModelConfig config = testing::small_config();
  ParameterSet<float> a(config), b(config), c(config);
  a.initialise(11, InitScheme::small);
  b.initialise(11, InitScheme::small);
  c.initialise(12, InitScheme::small);
  EXPECT_TRUE(std::equal(a.values(), a.values() + a.numel(), b.values()));
  EXPECT_FALSE(std::equal(a.values(), a.values() + a.numel(), c.values()));
  // Distinct tensors draw distinct values (no stream shared between them).
  const float* qkv0 = a.value("blocks.0.attn.qkv.weight");
  const float* qkv1 = a.value("blocks.1.attn.qkv.weight");
  EXPECT_FALSE(std::equal(qkv0, qkv0 + 16, qkv1));
}

TEST(Parameters, ZeroGradsClearsTheWholeBuffer) {
  ParameterSet<float> params(testing::small_config());
  std::fill(params.grads(), params.grads() + params.numel(), 3.0f);
  params.zero_grads();
  for (int64_t i = 0; i < params.numel(); ++i) ASSERT_EQ(params.grads()[i], 0.0f) << i;
}

}  // namespace
}  // namespace mone
