// Where a training step's time goes: an ops policy (model/step.h) that runs
// the CPU's ops and charges each call's wall time and multiply-adds to a part
// of the step. Used by `mone-bench-step --parts`; not a test.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/ops.h"
#include "model/step_ops.h"

namespace mone {

enum class Part {
  embedding,      // patchify, patch embedding, position embedding
  routing,        // router, EPR and the expert-sorted order
  permutation,    // tokens into and out of the expert-sorted layout, r gathered and scattered
  qkv,            // nested in-projection of attention
  attention,      // scores, softmax and products at full width
  out_projection, // nested out-projection of attention
  fc1,            // nested MLP in-projection
  gelu,
  fc2,            // nested MLP out-projection
  layernorm,
  residual,       // residual adds and the (alpha r + 1) scaling
  head,           // final pooling and the classifier
  loss,
  zeroing,        // gradient buffers cleared
  optimizer,      // AdamW
  count
};

inline const char* part_name(Part p) {
  static const char* names[] = {"embedding",  "routing (router, EPR)", "permutation", "qkv projection",
                                "attention",  "out projection",        "fc1",         "GELU",
                                "fc2",        "LayerNorm",             "residual and scaling",
                                "pooling and head", "loss", "zeroing", "optimizer (AdamW)"};
  return names[static_cast<int>(p)];
}

// Time (ms) and multiply-adds charged to each part, summed over the steps run.
struct PartTotals {
  std::array<double, static_cast<size_t>(Part::count)> ms{}, macs{};
  void charge(Part p, double ms_, double macs_) {
    ms[static_cast<size_t>(p)] += ms_;
    macs[static_cast<size_t>(p)] += macs_;
  }
};

// Runs `f` and charges its wall time and `macs` to `part`.
template <class F>
auto timed(PartTotals& totals, Part part, double macs, F&& f) {
  struct Charge {
    PartTotals& totals;
    Part part;
    double macs;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~Charge() {
      totals.charge(part, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
                    macs);
    }
  } charge{totals, part, macs};
  return f();
}

// CpuStepOps<float> with every op charged to its part. The fused fc1 + GELU
// and GELU + fc2 backward are run as their two halves, so GELU is a part of
// its own (the same calls ops_linear.cpp makes).
class TimedStepOps {
 public:
  using Value = float;
  using Exact = float;
  using AttentionSaved = float;

  TimedStepOps(CpuStepOps<float>& inner, const ModelConfig& config, PartTotals& totals)
      : inner_(inner), config_(config), totals_(totals) {}

  const float* weight(const std::string& name) const { return inner_.weight(name); }
  const float* exact(const std::string& name) const { return inner_.exact(name); }
  float scalar(const std::string& name) const { return inner_.scalar(name); }
  float* grad(const std::string& name) const { return inner_.grad(name); }
  int64_t offset(const std::string& name) const { return inner_.offset(name); }
  int64_t gradient_numel() const { return inner_.gradient_numel(); }
  float label_smoothing() const { return inner_.label_smoothing(); }
  int64_t attention_saved_numel(int64_t batch, int64_t heads, int64_t tokens) const {
    return inner_.attention_saved_numel(batch, heads, tokens);
  }
  const float* as_value(const float* x, int64_t n, float* scratch) const { return inner_.as_value(x, n, scratch); }

#define MONE_TIMED_OP(name, part)                                                           \
  template <class... Args>                                                                  \
  auto name(Args&&... args) const {                                                         \
    return timed(totals_, part, 0, [&] { return inner_.name(std::forward<Args>(args)...); }); \
  }
  MONE_TIMED_OP(patchify, Part::embedding)
  MONE_TIMED_OP(position_embed_forward, Part::embedding)
  MONE_TIMED_OP(position_embed_backward, Part::embedding)
  MONE_TIMED_OP(route, Part::routing)
  MONE_TIMED_OP(permute_tokens_forward, Part::permutation)
  MONE_TIMED_OP(permute_tokens_backward, Part::permutation)
  MONE_TIMED_OP(gather_chosen_probability, Part::permutation)
  MONE_TIMED_OP(scatter_chosen_probability, Part::permutation)
  MONE_TIMED_OP(layernorm_forward, Part::layernorm)
  MONE_TIMED_OP(layernorm_backward, Part::layernorm)
  MONE_TIMED_OP(add_inplace, Part::residual)
  MONE_TIMED_OP(scaled_residual_forward, Part::residual)
  MONE_TIMED_OP(scaled_residual_backward, Part::residual)
  MONE_TIMED_OP(mean_pool_forward, Part::head)
  MONE_TIMED_OP(mean_pool_backward, Part::head)
  MONE_TIMED_OP(cross_entropy_backward, Part::loss)
  MONE_TIMED_OP(zero, Part::zeroing)
#undef MONE_TIMED_OP

  void patch_embed_forward(const float* patches, int64_t rows, int64_t patch_dim, const float* w, const float* b,
                           int64_t D, float* out) const {
    timed(totals_, Part::embedding, double(rows) * patch_dim * D,
          [&] { inner_.patch_embed_forward(patches, rows, patch_dim, w, b, D, out); });
  }
  void patch_embed_backward(const float* dout, const float* patches, int64_t rows, int64_t patch_dim, int64_t D,
                            float* dw, float* db) const {
    timed(totals_, Part::embedding, double(rows) * patch_dim * D,
          [&] { inner_.patch_embed_backward(dout, patches, rows, patch_dim, D, dw, db); });
  }
  void router_forward(const float* x, int64_t M, int64_t D, const float* W, const float* b, int64_t E,
                      float* probs) const {
    timed(totals_, Part::routing, double(M) * D * E, [&] { inner_.router_forward(x, M, D, W, b, E, probs); });
  }
  void router_backward(const float* dprobs, const float* probs, const float* x, int64_t M, int64_t D, const float* W,
                       int64_t E, float* dx, float* dW, float* db) const {
    timed(totals_, Part::routing, 2.0 * M * D * E,
          [&] { inner_.router_backward(dprobs, probs, x, M, D, W, E, dx, dW, db); });
  }
  void nested_in_forward(const float* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const float* W,
                         const float* b, int64_t out, float* y) const {
    timed(totals_, part_of_in(out), group_macs(groups, double(out)),
          [&] { inner_.nested_in_forward(x, ldx, groups, W, b, out, y); });
  }
  void nested_in_backward(const float* dy, const float* x, int64_t ldx, const std::vector<ExpertGroup>& groups,
                          const float* W, int64_t out, float* dx, float* dW, float* db) const {
    timed(totals_, part_of_in(out), group_macs(groups, 2.0 * out),
          [&] { inner_.nested_in_backward(dy, x, ldx, groups, W, out, dx, dW, db); });
  }
  void nested_out_forward(const float* x, int64_t in, const std::vector<ExpertGroup>& groups, const float* W,
                          const float* b, int64_t out, float* y) const {
    timed(totals_, part_of_out(in), group_macs(groups, double(in)),
          [&] { inner_.nested_out_forward(x, in, groups, W, b, out, y); });
  }
  void nested_out_backward(const float* dy, const float* x, int64_t in, const std::vector<ExpertGroup>& groups,
                           const float* W, int64_t out, float* dx, float* dW, float* db) const {
    timed(totals_, part_of_out(in), group_macs(groups, 2.0 * in),
          [&] { inner_.nested_out_backward(dy, x, in, groups, W, out, dx, dW, db); });
  }
  void nested_in_gelu_forward(const float* x, int64_t ldx, const std::vector<ExpertGroup>& groups, const float* W,
                              const float* b, int64_t out, float* pre, float* y) const {
    nested_in_forward(x, ldx, groups, W, b, out, pre);
    timed(totals_, Part::gelu, 0, [&] { gelu_forward(pre, group_rows(groups) * out, y, config_.gelu); });
  }
  void gelu_nested_out_backward(const float* dy, const float* x, const float* pre, int64_t in,
                                const std::vector<ExpertGroup>& groups, const float* W, int64_t out, float* dpre,
                                float* dW, float* db) const {
    nested_out_backward(dy, x, in, groups, W, out, dpre, dW, db);
    timed(totals_, Part::gelu, 0, [&] { gelu_backward(dpre, pre, group_rows(groups) * in, dpre, config_.gelu); });
  }
  void attend(const float* qkv, const TokenLayout& layout, float* out, float* probs) const {
    timed(totals_, Part::attention, attention_macs(layout, 2.0), [&] { inner_.attend(qkv, layout, out, probs); });
  }
  void attend_backward(const float* dout, const float* qkv, const float* out, const float* probs,
                       const TokenLayout& layout, float* dqkv) const {
    timed(totals_, Part::attention, attention_macs(layout, 4.0),
          [&] { inner_.attend_backward(dout, qkv, out, probs, layout, dqkv); });
  }
  void linear_forward(const float* x, int64_t ldx, int64_t M, int64_t in, const float* W, int64_t ldw,
                      const float* b, int64_t out, float* y, int64_t ldy) const {
    timed(totals_, Part::head, double(M) * in * out,
          [&] { inner_.linear_forward(x, ldx, M, in, W, ldw, b, out, y, ldy); });
  }
  void linear_backward(const float* dy, int64_t ldy, const float* x, int64_t ldx, int64_t M, int64_t in,
                       const float* W, int64_t ldw, int64_t out, float* dx, int64_t lddx, float* dW,
                       float* db) const {
    timed(totals_, Part::head, (dx ? 2.0 : 1.0) * M * in * out,
          [&] { inner_.linear_backward(dy, ldy, x, ldx, M, in, W, ldw, out, dx, lddx, dW, db); });
  }

 private:
  // Which projection a nested op is, from its width: qkv is 3D wide, fc1 the hidden width.
  Part part_of_in(int64_t out) const { return out == config_.hidden() ? Part::fc1 : Part::qkv; }
  Part part_of_out(int64_t in) const { return in == config_.hidden() ? Part::fc2 : Part::out_projection; }
  double attention_macs(const TokenLayout& layout, double products) const {
    const double N = static_cast<double>(layout.tokens);
    return products * static_cast<double>(layout.images) * N * N * static_cast<double>(config_.dim);
  }

  CpuStepOps<float>& inner_;
  const ModelConfig& config_;
  PartTotals& totals_;
};

}  // namespace mone
