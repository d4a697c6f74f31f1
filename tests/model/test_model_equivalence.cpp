// The routed model against references built here from the primitive ops in
// the original [B, N, D] token order, in double:
//  - e_c = 1 (and E = 1) is exactly a dense pre-LN ViT;
//  - at e_c < 1 every token runs at its expert's width, i.e. the same network
//    computed one token at a time with per-token widths and MLP scales;
//  - the expert-sorted layout gives the same logits, loss and gradients as the
//    original token order.
// Tolerance 1e-12 on |a - b| / max(1, |a|, |b|): both sides are double and
// differ only in summation order (GEMM blocking, row order).
#include <vector>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/ops.h"
#include "tests/common/gradcheck.h"
#include "tests/common/model_fixtures.h"

namespace mone {
namespace {

using testing::Batch;
using testing::compare_buffers;
using testing::within_tolerance;

constexpr double kTolerance = 1e-12;

struct ReferenceOutput {
  std::vector<double> logits;
  double loss = 0;
};

// The network of the method page, section 1, token by token in the original
// order. Token i (row b*N + n) reads the first width[i] channels in every
// in-projection and writes the first width[i] channels in every
// out-projection; its MLP branch is scaled by alpha_l * router_prob[i] + 1.
// With width = D and router_prob = 0 (or alpha = 0) this is a dense ViT.
ReferenceOutput reference_forward(const ParameterSet<double>& params, const ModelConfig& c, const Batch<double>& batch,
                                  const std::vector<int64_t>& width, const std::vector<double>& router_prob) {
  const int64_t B = batch.size, N = c.tokens(), D = c.dim, hidden = c.hidden(), rows = B * N;
  auto value = [&](const std::string& name) { return params.values() + params.info(name).offset; };
  // Per token: y_i = x_i[:w] @ W[:w, :] + b (in) or y_i[:w] = x_i @ W[:, :w] + b[:w], rest 0 (out).
  auto project_in = [&](const std::vector<double>& x, int64_t in_dim, const std::string& p, int64_t out) {
    std::vector<double> y(rows * out);
    for (int64_t i = 0; i < rows; ++i)
      linear_forward(&x[i * in_dim], in_dim, 1, width[i], value(p + ".weight"), out, value(p + ".bias"), out,
                     &y[i * out], out);
    return y;
  };
  auto project_out = [&](const std::vector<double>& x, int64_t in, const std::string& p) {
    std::vector<double> y(rows * D, 0.0);
    for (int64_t i = 0; i < rows; ++i)
      linear_forward(&x[i * in], in, 1, in, value(p + ".weight"), D, value(p + ".bias"), width[i], &y[i * D], D);
    return y;
  };
  auto layernorm = [&](const std::vector<double>& x, const std::string& p) {
    std::vector<double> y(rows * D), mean(rows), rstd(rows);
    layernorm_forward(x.data(), rows, D, value(p + ".weight"), value(p + ".bias"), y.data(), mean.data(), rstd.data());
    return y;
  };

  std::vector<double> x = testing::embed_tokens(params, c, batch.images.data(), B);
  const TokenLayout layout = TokenLayout::image_major(B, N);
  for (int64_t l = 0; l < c.depth; ++l) {
    auto name = [&](const char* suffix) { return testing::block_param(l, suffix); };
    const std::vector<double> qkv = project_in(layernorm(x, name("norm1")), D, name("attn.qkv"), 3 * D);
    std::vector<double> attended(rows * D), probs(B * c.heads * N * N);
    attention_forward(qkv.data(), layout, c.heads, D, attended.data(), probs.data());
    const std::vector<double> update = project_out(attended, D, name("attn.proj"));
    std::vector<double> z(rows * D);
    for (int64_t i = 0; i < rows * D; ++i) z[i] = x[i] + update[i];
    std::vector<double> h = project_in(layernorm(z, name("norm2")), D, name("mlp.fc1"), hidden);
    gelu_forward(h.data(), rows * hidden, h.data());
    const std::vector<double> m = project_out(h, hidden, name("mlp.fc2"));
    const double alpha = *value(name("alpha"));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t d = 0; d < D; ++d) x[i * D + d] = z[i * D + d] + (alpha * router_prob[i] + 1.0) * m[i * D + d];
  }
  const std::vector<double> normed = layernorm(x, "norm");
  std::vector<double> pooled(B * D);
  mean_pool_forward(normed.data(), layout, D, pooled.data());
  ReferenceOutput out;
  out.logits.resize(B * c.classes);
  linear_forward(pooled.data(), D, B, D, value("head.weight"), c.classes, value("head.bias"), c.classes,
                 out.logits.data(), c.classes);
  std::vector<double> probs(B * c.classes);
  out.loss = cross_entropy_forward(out.logits.data(), batch.labels.data(), B, c.classes, probs.data());
  return out;
}

// A model with randomised parameters; alphas zeroed when asked.
struct Fixture {
  ModelConfig config;
  Model<double> model;
  Batch<double> batch;
  Fixture(int64_t experts, bool zero_alpha, uint64_t seed)
      : config(testing::small_config(experts)), model(config, seed), batch(testing::random_batch<double>(config, 3, seed + 1)) {
    testing::randomise_parameters(model.params(), seed + 2);
    if (zero_alpha)
      for (int64_t l = 0; l < config.depth; ++l) *model.params().value(testing::block_param(l, "alpha")) = 0.0;
  }
  int64_t rows() const { return batch.size * config.tokens(); }
  // Router probability of each token's expert e: probs[i, e].
  std::vector<double> router_prob_of(const std::vector<int32_t>& expert_of_token) const {
    const auto embedded = testing::embed_tokens(model.params(), config, batch.images.data(), batch.size);
    const auto probs = testing::router_probabilities(model.params(), config, embedded, batch.size);
    std::vector<double> r(rows());
    for (int64_t i = 0; i < rows(); ++i) r[i] = probs[i * config.experts + expert_of_token[i]];
    return r;
  }
  void expect_matches(const ReferenceOutput& reference, double capacity) {
    const double* logits = model.forward(batch.images.data(), batch.size, plan_routing(model.config(), capacity));
    const int64_t n = batch.size * config.classes;
    EXPECT_TRUE(within_tolerance(compare_buffers("logits", logits, reference.logits.data(), n), kTolerance))
        << "e_c " << capacity;
    const double loss = model.forward_backward(batch.images.data(), batch.labels.data(), batch.size, plan_routing(model.config(), capacity));
    EXPECT_NEAR(loss, reference.loss, kTolerance) << "e_c " << capacity;
  }
};

TEST(ModelEquivalence, FullCapacityIsDenseViT) {
  // alpha = 0 (as initialised): the router has no effect and the model is a
  // plain ViT; the reference uses no router at all (prob 0).
  Fixture f(4, /*zero_alpha=*/true, 10);
  const ReferenceOutput dense = reference_forward(f.model.params(), f.config, f.batch,
                                                  std::vector<int64_t>(f.rows(), f.config.dim),
                                                  std::vector<double>(f.rows(), 0.0));
  f.expect_matches(dense, 1.0);
  EXPECT_EQ(f.model.routing().expert_of_token, std::vector<int32_t>(f.rows(), 3));
}

TEST(ModelEquivalence, FullCapacityWithAlphaIsDenseViTWithScaledMlp) {
  // alpha != 0: the dense ViT whose MLP branch is scaled by alpha * r_E + 1.
  Fixture f(4, /*zero_alpha=*/false, 20);
  const ReferenceOutput dense = reference_forward(f.model.params(), f.config, f.batch,
                                                  std::vector<int64_t>(f.rows(), f.config.dim),
                                                  f.router_prob_of(std::vector<int32_t>(f.rows(), 3)));
  f.expect_matches(dense, 1.0);
}

TEST(ModelEquivalence, SingleExpertIsDenseViT) {
  // E = 1: the only feasible e_c is 1 and the router's softmax over one
  // expert is 1, so with alpha = 0 this is a dense ViT.
  Fixture f(1, /*zero_alpha=*/true, 30);
  const ReferenceOutput dense = reference_forward(f.model.params(), f.config, f.batch,
                                                  std::vector<int64_t>(f.rows(), f.config.dim),
                                                  std::vector<double>(f.rows(), 0.0));
  f.expect_matches(dense, 1.0);
}

TEST(ModelEquivalence, RoutedModelIsPerTokenNestedNetwork) {
  // e_c < 1: each token at its expert's width (the routing decision itself is
  // checked against EPR in test_routing), MLP scaled by alpha_l * r + 1.
  Fixture f(4, /*zero_alpha=*/false, 40);
  for (double capacity : {0.5, 0.3, 0.2}) {
    f.model.forward(f.batch.images.data(), f.batch.size, plan_routing(f.model.config(), capacity));
    const std::vector<int32_t> experts = f.model.routing().expert_of_token;
    std::vector<int64_t> width(f.rows());
    for (int64_t i = 0; i < f.rows(); ++i) width[i] = f.config.expert_width(experts[i] + 1);
    const ReferenceOutput reference =
        reference_forward(f.model.params(), f.config, f.batch, width, f.router_prob_of(experts));
    f.expect_matches(reference, capacity);
  }
}

TEST(ModelEquivalence, ExpertSortedLayoutEqualsOriginalOrder) {
  // Same weights and batch through both layouts: logits, loss and every
  // parameter gradient agree to summation-order round-off.
  Fixture f(4, /*zero_alpha=*/false, 50);
  Model<double>& model = f.model;
  const int64_t n_logits = f.batch.size * f.config.classes, n_params = model.params().numel();
  for (double capacity : {0.5, 0.3}) {
    model.set_token_order(TokenOrder::expert_sorted);
    model.params().zero_grads();
    const double sorted_loss = model.forward_backward(f.batch.images.data(), f.batch.labels.data(), f.batch.size, plan_routing(model.config(), capacity));
    const std::vector<double> sorted_logits(model.logits(), model.logits() + n_logits);
    const std::vector<double> sorted_grads(model.params().grads(), model.params().grads() + n_params);
    const std::vector<int32_t> sorted_experts = model.routing().expert_of_token;

    model.set_token_order(TokenOrder::original);
    model.params().zero_grads();
    const double original_loss =
        model.forward_backward(f.batch.images.data(), f.batch.labels.data(), f.batch.size, plan_routing(model.config(), capacity));
    EXPECT_EQ(model.routing().expert_of_token, sorted_experts);
    EXPECT_NEAR(sorted_loss, original_loss, kTolerance) << "e_c " << capacity;
    EXPECT_TRUE(within_tolerance(compare_buffers("logits", sorted_logits.data(), model.logits(), n_logits), kTolerance))
        << "e_c " << capacity;
    for (const ParamInfo& info : model.params().infos())
      EXPECT_TRUE(within_tolerance(compare_buffers("grad " + info.name, sorted_grads.data() + info.offset,
                                                   model.params().grads() + info.offset, info.numel),
                                   kTolerance))
          << "e_c " << capacity;
  }
}

}  // namespace
}  // namespace mone
