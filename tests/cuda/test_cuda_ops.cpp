// Every device op, forward and backward, against the CPU reference (in
// double, on the same inputs as rounded to T) on fresh random inputs; outputs
// poisoned with NaN first, gradient buffers of "+=" ops prefilled with random
// values. Tolerances: fp32 mode 1e-5, bf16 mode 2e-2 (device_test_support.h),
// the same for every op unless a test says otherwise.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "model/capacity.h"
#include "model/cuda/check.h"
#include "model/cuda/ops.h"
#include "model/ops.h"
#include "tests/cuda/cuda_test_fixture.h"

namespace mone::testing {
namespace {

template <class T>
using CudaOps = CudaTest<T>;
using Modes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaOps, Modes, ModeName);

TYPED_TEST(CudaOps, Linear) {
  using T = TypeParam;
  const int64_t M = 37, in = 24, out = 40;
  const auto x = this->input(M * in), W = this->input(in * out, 0.05, 0.5), b = this->input(out),
             dy = this->input(M * out);
  const auto dW0 = this->prefill(in * out), db0 = this->prefill(out);
  std::vector<double> y(M * out), dx(M * in), dW = dW0, db = db0;
  linear_forward<double>(x.data(), in, M, in, W.data(), out, b.data(), out, y.data(), out);
  linear_backward<double>(dy.data(), out, x.data(), in, M, in, W.data(), out, out, dx.data(), in, dW.data(),
                          db.data());

  auto x_d = upload<T>(x), W_d = upload<T>(W), b_d = upload<T>(b), dy_d = upload<T>(dy);
  auto y_d = poisoned<T>(M * out), dx_d = poisoned<T>(M * in);
  auto dW_d = upload<float>(dW0), db_d = upload<float>(db0);
  cuda::linear_forward<T, T>(x_d.get(), in, M, in, W_d.get(), out, b_d.get(), out, y_d.get(), out, *this->context);
  cuda::linear_backward<T>(dy_d.get(), out, x_d.get(), in, M, in, W_d.get(), out, out, dx_d.get(), in, dW_d.get(),
                           db_d.get(), *this->context);
  this->expect_near("y", y_d, y);
  this->expect_near("dx", dx_d, dx);
  this->expect_near("dW", dW_d, dW);
  this->expect_near("db", db_d, db);
}

// A bias not 16-byte aligned skips cuBLASLt's bias epilogue: written into y
// first, the GEMM accumulating onto it. Both output types (T, and fp32 as for
// the router and the head).
TYPED_TEST(CudaOps, LinearWithAMisalignedBias) {
  using T = TypeParam;
  const int64_t M = 21, in = 16, out = 24;
  const auto x = this->input(M * in), W = this->input(in * out, 0.05, 0.5), b = this->input(out);
  std::vector<double> y(M * out);
  linear_forward<double>(x.data(), in, M, in, W.data(), out, b.data(), out, y.data(), out);
  std::vector<double> shifted_b = {0.0};  // b starts one element into its array
  shifted_b.insert(shifted_b.end(), b.begin(), b.end());
  auto x_d = upload<T>(x), W_d = upload<T>(W), b_d = upload<T>(shifted_b), b_float_d = upload<float>(shifted_b);
  auto y_d = poisoned<T>(M * out);
  auto y_float_d = poisoned<float>(M * out);
  cuda::linear_forward<T, T>(x_d.get(), in, M, in, W_d.get(), out, b_d.get() + 1, out, y_d.get(), out,
                             *this->context);
  this->expect_near("y", y_d, y);
  if constexpr (!std::is_same_v<T, float>) {  // linear_forward<float, float> is the case above
    cuda::linear_forward<T, float>(x_d.get(), in, M, in, W_d.get(), out, b_float_d.get() + 1, out, y_float_d.get(),
                                   out, *this->context);
    this->expect_near("y (fp32 output)", y_float_d, y);
  }
}

// Few rows and a long K: the shape where cuBLASLt likes split-K. The bf16
// output must still be the fp32 sum rounded once (within one bf16 ulp of the
// output's scale), not partial sums rounded to bf16 and added.
TYPED_TEST(CudaOps, LongReductionAccumulatesInFp32) {
  using T = TypeParam;
  const int64_t M = 4, in = 8192, out = 32;
  const auto x = this->input(M * in), W = this->input(in * out);
  std::vector<double> y(M * out);
  linear_forward<double>(x.data(), in, M, in, W.data(), out, nullptr, out, y.data(), out);
  auto x_d = upload<T>(x), W_d = upload<T>(W);
  auto y_d = poisoned<T>(M * out);
  cuda::linear_forward<T, T>(x_d.get(), in, M, in, W_d.get(), out, static_cast<const T*>(nullptr), out, y_d.get(),
                             out, *this->context);
  this->expect_near("y", y_d, y, std::is_same_v<T, float> ? kFp32Tolerance : 1.0 / 256);
}

TYPED_TEST(CudaOps, PatchAndPositionEmbedding) {
  using T = TypeParam;
  const int64_t B = 3, H = 12, W = 8, C = 3, P = 4, N = (H / P) * (W / P), patch_dim = P * P * C, D = 20;
  const auto images = this->input(B * H * W * C), weight = this->input(patch_dim * D, 0.05, 0.3),
             bias = this->input(D), pos = this->input(N * D), dout = this->input(B * N * D);
  const auto dweight0 = this->prefill(patch_dim * D), dbias0 = this->prefill(D), dpos0 = this->prefill(N * D);
  std::vector<double> patches(B * N * patch_dim), out(B * N * D), dweight = dweight0, dbias = dbias0, dpos = dpos0;
  patchify<double>(images.data(), B, H, W, C, P, patches.data());
  patch_embed_forward<double>(patches.data(), B * N, patch_dim, weight.data(), bias.data(), D, out.data());
  position_embed_forward<double>(out.data(), pos.data(), B, N, D);
  patch_embed_backward<double>(dout.data(), patches.data(), B * N, patch_dim, D, dweight.data(), dbias.data());
  position_embed_backward<double>(dout.data(), B, N, D, dpos.data());

  auto images_d = upload<T>(images), weight_d = upload<T>(weight), bias_d = upload<T>(bias), pos_d = upload<T>(pos),
       dout_d = upload<T>(dout);
  auto patches_d = poisoned<T>(B * N * patch_dim), out_d = poisoned<T>(B * N * D);
  auto dweight_d = upload<float>(dweight0), dbias_d = upload<float>(dbias0), dpos_d = upload<float>(dpos0);
  const cuda::DeviceContext& ctx = *this->context;
  cuda::patchify<T>(images_d.get(), B, H, W, C, P, patches_d.get(), ctx);
  cuda::patch_embed_forward<T>(patches_d.get(), B * N, patch_dim, weight_d.get(), bias_d.get(), D, out_d.get(), ctx);
  cuda::position_embed_forward<T>(out_d.get(), pos_d.get(), B, N, D, ctx);
  cuda::patch_embed_backward<T>(dout_d.get(), patches_d.get(), B * N, patch_dim, D, dweight_d.get(), dbias_d.get(),
                                ctx);
  cuda::position_embed_backward<T>(dout_d.get(), B, N, D, dpos_d.get(), ctx);
  this->expect_near("patches", patches_d, patches, 0.0);  // a copy: exact
  this->expect_near("embedded", out_d, out);
  this->expect_near("dweight", dweight_d, dweight);
  this->expect_near("dbias", dbias_d, dbias);
  this->expect_near("dpos", dpos_d, dpos);
}

TYPED_TEST(CudaOps, LayerNorm) {
  using T = TypeParam;
  const int64_t M = 45, D = 72;  // D not a multiple of 32: partial lanes
  auto x = this->input(M * D);
  for (int64_t i = 0; i < M * D; i += 3) x[i] += 2.0;  // a mean far from zero
  x = rounded<T>(x);
  const auto gain = this->input(D, 0.5, 1.5), bias = this->input(D), dy = this->input(M * D),
             dx0 = this->input(M * D);
  const auto dgain0 = this->prefill(D), dbias0 = this->prefill(D);
  std::vector<double> y(M * D), mean(M), rstd(M), dx = dx0, dgain = dgain0, dbias = dbias0;
  layernorm_forward<double>(x.data(), M, D, gain.data(), bias.data(), y.data(), mean.data(), rstd.data());
  layernorm_backward<double>(dy.data(), x.data(), mean.data(), rstd.data(), gain.data(), M, D, dx.data(),
                             dgain.data(), dbias.data());

  auto x_d = upload<T>(x), gain_d = upload<T>(gain), bias_d = upload<T>(bias), dy_d = upload<T>(dy),
       dx_d = upload<T>(dx0);
  auto y_d = poisoned<T>(M * D);
  auto mean_d = poisoned<float>(M), rstd_d = poisoned<float>(M);
  auto dgain_d = upload<float>(dgain0), dbias_d = upload<float>(dbias0);
  const cuda::DeviceContext& ctx = *this->context;
  cuda::layernorm_forward<T>(x_d.get(), M, D, gain_d.get(), bias_d.get(), y_d.get(), mean_d.get(), rstd_d.get(), ctx);
  cuda::layernorm_backward<T>(dy_d.get(), x_d.get(), mean_d.get(), rstd_d.get(), gain_d.get(), M, D, dx_d.get(),
                              dgain_d.get(), dbias_d.get(), ctx);
  this->expect_near("y", y_d, y);
  this->expect_near("mean", mean_d, mean, kFp32Tolerance);  // fp32 statistics in both modes
  this->expect_near("rstd", rstd_d, rstd, kFp32Tolerance);
  this->expect_near("dx (added)", dx_d, dx);
  this->expect_near("dgain", dgain_d, dgain);
  this->expect_near("dbias", dbias_d, dbias);
}

TYPED_TEST(CudaOps, NestedProjections) {
  using T = TypeParam;
  const int64_t B = 5, N = 16, D = 32, hidden = 48, M = B * N;
  const std::vector<int64_t> counts = {5, 4, 4, 3}, widths = {4, 8, 16, 32};
  const std::vector<ExpertGroup> groups = expert_groups(counts, widths, B);
  const auto x = this->input(M * D), W_in = this->input(D * hidden, 0.05, 0.5), b_in = this->input(hidden),
             dy_in = this->input(M * hidden);
  const auto h = this->input(M * hidden), W_out = this->input(hidden * D, 0.05, 0.5), b_out = this->input(D),
             dy_out = this->input(M * D);
  const auto dW_in0 = this->prefill(D * hidden), db_in0 = this->prefill(hidden), dW_out0 = this->prefill(hidden * D),
             db_out0 = this->prefill(D);
  std::vector<double> y_in(M * hidden), dx_in(M * D), dW_in = dW_in0, db_in = db_in0;
  std::vector<double> y_out(M * D), dx_out(M * hidden), dW_out = dW_out0, db_out = db_out0;
  nested_in_forward<double>(x.data(), D, groups, W_in.data(), b_in.data(), hidden, y_in.data());
  nested_in_backward<double>(dy_in.data(), x.data(), D, groups, W_in.data(), hidden, dx_in.data(), dW_in.data(),
                             db_in.data());
  nested_out_forward<double>(h.data(), hidden, groups, W_out.data(), b_out.data(), D, y_out.data());
  nested_out_backward<double>(dy_out.data(), h.data(), hidden, groups, W_out.data(), D, dx_out.data(),
                              dW_out.data(), db_out.data());

  const cuda::DeviceContext& ctx = *this->context;
  auto x_d = upload<T>(x), W_in_d = upload<T>(W_in), b_in_d = upload<T>(b_in), dy_in_d = upload<T>(dy_in);
  auto h_d = upload<T>(h), W_out_d = upload<T>(W_out), b_out_d = upload<T>(b_out), dy_out_d = upload<T>(dy_out);
  auto y_in_d = poisoned<T>(M * hidden), dx_in_d = poisoned<T>(M * D);
  auto y_out_d = poisoned<T>(M * D), dx_out_d = poisoned<T>(M * hidden);
  auto dW_in_d = upload<float>(dW_in0), db_in_d = upload<float>(db_in0), dW_out_d = upload<float>(dW_out0),
       db_out_d = upload<float>(db_out0);
  cuda::nested_in_forward<T>(x_d.get(), D, groups, W_in_d.get(), b_in_d.get(), hidden, y_in_d.get(), ctx);
  cuda::nested_in_backward<T>(dy_in_d.get(), x_d.get(), D, groups, W_in_d.get(), hidden, dx_in_d.get(),
                              dW_in_d.get(), db_in_d.get(), ctx);
  cuda::nested_out_forward<T>(h_d.get(), hidden, groups, W_out_d.get(), b_out_d.get(), D, y_out_d.get(), ctx);
  cuda::nested_out_backward<T>(dy_out_d.get(), h_d.get(), hidden, groups, W_out_d.get(), D, dx_out_d.get(),
                               dW_out_d.get(), db_out_d.get(), ctx);
  this->expect_near("in: y", y_in_d, y_in);
  this->expect_near("in: dx", dx_in_d, dx_in);
  this->expect_near("in: dW", dW_in_d, dW_in);
  this->expect_near("in: db", db_in_d, db_in);
  this->expect_near("out: y", y_out_d, y_out);
  this->expect_near("out: dx", dx_out_d, dx_out);
  this->expect_near("out: dW", dW_out_d, dW_out);
  this->expect_near("out: db", db_out_d, db_out);
}

// Tolerance of GELU and gelu' computed in a cuBLASLt epilogue. In fp32 the
// epilogue may evaluate tanh with the hardware approximation (tanh.approx.f32:
// relative error up to 2^-11, PTX ISA), not the full-precision expf of our
// kernel. With t = tanh u(x), u' = du/dx, that moves gelu(x) by up to
// |x| t 2^-12 (2.4e-4 relative) and gelu'(x) by up to |1/2 - x t u'| t 2^-11,
// 2.3e-3 at |x| = 3, where gelu' is about 1: hence 5e-3. bf16 rounding of the
// output is coarser than either, so bf16 keeps its 2e-2.
template <class T> constexpr double gelu_epilogue_tolerance() { return sizeof(T) == 4 ? 5e-3 : kBf16Tolerance; }

// The GELU epilogues on one GEMM each, with the transposes the MLP uses (fc1
// forward A B, fc2's dx A B^T), an odd row count, and a GELU input with a row
// stride cuBLASLt does not take, which must leave everything untouched.
TYPED_TEST(CudaOps, GemmGeluEpilogues) {
  using T = TypeParam;
  const int64_t M = 37, N = 48, K = 24;
  const auto x = this->input(M * K), W = this->input(K * N, 0.05, 0.5), b = this->input(N), dy = this->input(M * K),
             W_t = this->input(N * K, 0.05, 0.5), pre_in = this->input(M * N, 0.01, 3.0);
  std::vector<double> pre(M * N), y(M * N), dpre(M * N);
  linear_forward<double>(x.data(), K, M, K, W.data(), N, b.data(), N, pre.data(), N);
  gelu_forward<double>(pre.data(), M * N, y.data());
  gemm<double>(false, true, M, N, K, 1.0, dy.data(), K, W_t.data(), K, 0.0, dpre.data(), N);
  gelu_backward<double>(dpre.data(), pre_in.data(), M * N, dpre.data());

  const cuda::DeviceContext& ctx = *this->context;
  auto x_d = upload<T>(x), W_d = upload<T>(W), b_d = upload<T>(b), dy_d = upload<T>(dy), W_t_d = upload<T>(W_t),
       pre_in_d = upload<T>(pre_in);
  auto pre_d = poisoned<T>(M * N), y_d = poisoned<T>(M * N), dpre_d = poisoned<T>(M * N);
  const bool forward_fused = cuda::gemm_bias_gelu<T>(false, false, M, N, K, x_d.get(), K, W_d.get(), N, y_d.get(),
                                                     N, b_d.get(), pre_d.get(), N, ctx);
  const bool backward_fused = cuda::gemm_gelu_backward<T>(false, true, M, N, K, dy_d.get(), K, W_t_d.get(), K,
                                                          dpre_d.get(), N, pre_in_d.get(), N, ctx);
  // bf16 is where the model relies on them; for fp32 the answer is cuBLASLt's.
  if (std::is_same_v<T, bf16>) {
    EXPECT_TRUE(forward_fused) << "no cuBLASLt algorithm for GELU_AUX_BIAS";
    EXPECT_TRUE(backward_fused) << "no cuBLASLt algorithm for DGELU";
  }
  if (forward_fused) {
    this->expect_near("pre", pre_d, pre);
    this->expect_near("gelu(pre)", y_d, y, gelu_epilogue_tolerance<T>());
  }
  if (backward_fused) this->expect_near("dpre", dpre_d, dpre, gelu_epilogue_tolerance<T>());

  const int64_t narrow = 20;  // a row stride that is no multiple of 8
  auto narrow_d = poisoned<T>(M * narrow);
  EXPECT_FALSE(cuda::gemm_bias_gelu<T>(false, false, M, narrow, K, x_d.get(), K, W_d.get(), N, narrow_d.get(),
                                       narrow, b_d.get(), narrow_d.get(), narrow, ctx));
  EXPECT_FALSE(cuda::gemm_gelu_backward<T>(false, true, M, narrow, K, dy_d.get(), K, W_t_d.get(), K, narrow_d.get(),
                                           narrow, narrow_d.get(), narrow, ctx));
  for (double v : download(narrow_d, ctx)) ASSERT_TRUE(std::isnan(v)) << "a refused epilogue wrote its output";
}

// The MLP's ends with GELU in the epilogues against nested_in_forward +
// gelu_forward and nested_out_backward + gelu_backward on the CPU: hidden 48
// takes the epilogues, hidden 20 (row stride no multiple of 8) the separate
// kernels, whose fp32 results must then hold 1e-5. Groups of odd row counts
// and four widths, one of them odd.
TYPED_TEST(CudaOps, NestedProjectionsWithGelu) {
  using T = TypeParam;
  const int64_t B = 3, N = 15, D = 32, M = B * N;
  const std::vector<ExpertGroup> groups = expert_groups({5, 4, 3, 3}, {5, 8, 16, 32}, B);
  for (const int64_t hidden : {48, 20}) {
    SCOPED_TRACE("hidden " + std::to_string(hidden));
    const double gelu_tolerance = hidden % 8 == 0 ? gelu_epilogue_tolerance<T>() : tolerance_of<T>();
    const auto x = this->input(M * D), W_in = this->input(D * hidden, 0.05, 0.5), b_in = this->input(hidden);
    const auto h = this->input(M * hidden), pre_in = this->input(M * hidden, 0.01, 3.0),
               W_out = this->input(hidden * D, 0.05, 0.5), dy = this->input(M * D);
    const auto dW0 = this->prefill(hidden * D), db0 = this->prefill(D);
    std::vector<double> pre(M * hidden), y(M * hidden), dpre(M * hidden), dW = dW0, db = db0;
    nested_in_forward<double>(x.data(), D, groups, W_in.data(), b_in.data(), hidden, pre.data());
    gelu_forward<double>(pre.data(), M * hidden, y.data());
    nested_out_backward<double>(dy.data(), h.data(), hidden, groups, W_out.data(), D, dpre.data(), dW.data(),
                                db.data());
    gelu_backward<double>(dpre.data(), pre_in.data(), M * hidden, dpre.data());

    const cuda::DeviceContext& ctx = *this->context;
    auto x_d = upload<T>(x), W_in_d = upload<T>(W_in), b_in_d = upload<T>(b_in), h_d = upload<T>(h),
         pre_in_d = upload<T>(pre_in), W_out_d = upload<T>(W_out), dy_d = upload<T>(dy);
    auto pre_d = poisoned<T>(M * hidden), y_d = poisoned<T>(M * hidden), dpre_d = poisoned<T>(M * hidden);
    auto dW_d = upload<float>(dW0), db_d = upload<float>(db0);
    cuda::nested_in_gelu_forward<T>(x_d.get(), D, groups, W_in_d.get(), b_in_d.get(), hidden, pre_d.get(),
                                    y_d.get(), ctx);
    cuda::gelu_nested_out_backward<T>(dy_d.get(), h_d.get(), pre_in_d.get(), hidden, groups, W_out_d.get(), D,
                                      dpre_d.get(), dW_d.get(), db_d.get(), ctx);
    this->expect_near("pre", pre_d, pre);
    this->expect_near("y = gelu(pre)", y_d, y, gelu_tolerance);
    this->expect_near("dpre", dpre_d, dpre, gelu_tolerance);
    this->expect_near("dW", dW_d, dW);
    this->expect_near("db", db_d, db);
  }
}

// Attention in both layouts, at N = 49 with head dim 40 (lanes partly idle
// in the second slot) and at ViT-S/16's N = 197 (with a class token), 6 heads
// of 64.
TYPED_TEST(CudaOps, Attention) {
  using T = TypeParam;
  struct Shape {
    int64_t B, N, heads, D;
  };
  for (const Shape shape : {Shape{3, 49, 2, 80}, Shape{2, 197, 6, 384}}) {
    const int64_t B = shape.B, N = shape.N, heads = shape.heads, D = shape.D, M = B * N;
    for (const TokenLayout layout : {TokenLayout::token_major(B, N), TokenLayout::image_major(B, N)}) {
      SCOPED_TRACE("N " + std::to_string(N) + (layout.token_stride == 1 ? ", image-major" : ", token-major"));
      const auto qkv = this->input(M * 3 * D, 0.1, 1.5), dout = this->input(M * D);
      std::vector<double> out(M * D), probs(B * heads * N * N), dqkv(M * 3 * D);
      attention_forward<double>(qkv.data(), layout, heads, D, out.data(), probs.data());
      attention_backward<double>(dout.data(), qkv.data(), probs.data(), layout, heads, D, dqkv.data());

      const cuda::DeviceContext& ctx = *this->context;
      auto qkv_d = upload<T>(qkv), dout_d = upload<T>(dout);
      auto out_d = poisoned<T>(M * D), dqkv_d = poisoned<T>(M * 3 * D);
      auto lse_d = poisoned<float>(B * heads * N);
      cuda::attention_forward<T>(qkv_d.get(), layout, heads, D, out_d.get(), lse_d.get(), ctx);
      cuda::attention_backward<T>(dout_d.get(), qkv_d.get(), out_d.get(), lse_d.get(), layout, heads, D,
                                  dqkv_d.get(), ctx);
      this->expect_near("out", out_d, out);
      this->expect_near("dqkv", dqkv_d, dqkv);
    }
  }
}

TYPED_TEST(CudaOps, Gelu) {
  using T = TypeParam;
  const int64_t n = 1000;
  const auto x = this->input(n, 0.01, 4.0), dy = this->input(n);
  std::vector<double> y(n), dx(n);
  gelu_forward<double>(x.data(), n, y.data());
  gelu_backward<double>(dy.data(), x.data(), n, dx.data());
  auto x_d = upload<T>(x), dy_d = upload<T>(dy);
  auto y_d = poisoned<T>(n), dx_d = poisoned<T>(n);
  cuda::gelu_forward<T>(x_d.get(), n, y_d.get(), *this->context);
  cuda::gelu_backward<T>(dy_d.get(), x_d.get(), n, dx_d.get(), *this->context);
  this->expect_near("y", y_d, y);
  this->expect_near("dx", dx_d, dx);
}

TYPED_TEST(CudaOps, Router) {
  using T = TypeParam;
  const int64_t M = 50, D = 24, E = 4;
  const auto x = this->input(M * D), W = this->input(D * E, 0.05, 0.5), dprobs = this->input(M * E),
             dx0 = this->input(M * D);
  const auto b = rounded<float>(this->input(E)), dW0 = this->prefill(D * E), db0 = this->prefill(E);
  std::vector<double> probs(M * E), dx = dx0, dW = dW0, db = db0;
  router_forward<double>(x.data(), M, D, W.data(), b.data(), E, probs.data());
  router_backward<double>(dprobs.data(), probs.data(), x.data(), M, D, W.data(), E, dx.data(), dW.data(), db.data());

  const cuda::DeviceContext& ctx = *this->context;
  auto x_d = upload<T>(x), W_d = upload<T>(W), dx_d = upload<T>(dx0);
  auto b_d = upload<float>(b), dprobs_d = upload<float>(rounded<float>(dprobs)), probs_d = poisoned<float>(M * E);
  auto dW_d = upload<float>(dW0), db_d = upload<float>(db0);
  cuda::router_forward<T>(x_d.get(), M, D, W_d.get(), b_d.get(), E, probs_d.get(), ctx);
  this->expect_near("probs", probs_d, probs);
  // The backward from the CPU's probabilities, so only the backward is measured.
  auto reference_probs_d = upload<float>(probs);
  cuda::router_backward<T>(dprobs_d.get(), reference_probs_d.get(), x_d.get(), M, D, W_d.get(), E, dx_d.get(),
                           dW_d.get(), db_d.get(), ctx);
  this->expect_near("dx (added)", dx_d, dx);
  this->expect_near("dW", dW_d, dW);
  this->expect_near("db", db_d, db);
}

TYPED_TEST(CudaOps, ScaledResidual) {
  using T = TypeParam;
  const int64_t M = 40, D = 48;
  const auto z = this->input(M * D), m = this->input(M * D), dout = this->input(M * D);
  const auto r = rounded<float>(this->random->uniform_vector(M, 0.05, 0.95));
  const std::vector<double> alpha = rounded<T>({0.7});
  const auto dr0 = this->prefill(M), dalpha0 = this->prefill(1);
  std::vector<double> out(M * D), dm(M * D), dr = dr0, dalpha = dalpha0;
  scaled_residual_forward<double>(z.data(), m.data(), r.data(), alpha[0], M, D, out.data());
  scaled_residual_backward<double>(dout.data(), m.data(), r.data(), alpha[0], M, D, dm.data(), dr.data(),
                                   dalpha.data());

  const cuda::DeviceContext& ctx = *this->context;
  auto z_d = upload<T>(z), m_d = upload<T>(m), dout_d = upload<T>(dout), alpha_d = upload<T>(alpha);
  auto r_d = upload<float>(r), dr_d = upload<float>(dr0), dalpha_d = upload<float>(dalpha0);
  auto out_d = poisoned<T>(M * D), dm_d = poisoned<T>(M * D);
  cuda::scaled_residual_forward<T>(z_d.get(), m_d.get(), r_d.get(), alpha_d.get(), M, D, out_d.get(), ctx);
  cuda::scaled_residual_backward<T>(dout_d.get(), m_d.get(), r_d.get(), alpha_d.get(), M, D, dm_d.get(), dr_d.get(),
                                    dalpha_d.get(), ctx);
  this->expect_near("out", out_d, out);
  this->expect_near("dm", dm_d, dm);
  this->expect_near("dr", dr_d, dr);
  this->expect_near("dalpha", dalpha_d, dalpha);
}

TYPED_TEST(CudaOps, MeanPool) {
  using T = TypeParam;
  const int64_t B = 4, N = 49, D = 36;
  for (const TokenLayout layout : {TokenLayout::token_major(B, N), TokenLayout::image_major(B, N)}) {
    const auto x = this->input(B * N * D), dout = this->input(B * D);
    std::vector<double> out(B * D), dx(B * N * D);
    mean_pool_forward<double>(x.data(), layout, D, out.data());
    mean_pool_backward<double>(dout.data(), layout, D, dx.data());
    auto x_d = upload<T>(x), dout_d = upload<T>(dout);
    auto out_d = poisoned<T>(B * D), dx_d = poisoned<T>(B * N * D);
    cuda::mean_pool_forward<T>(x_d.get(), layout, D, out_d.get(), *this->context);
    cuda::mean_pool_backward<T>(dout_d.get(), layout, D, dx_d.get(), *this->context);
    this->expect_near("pooled", out_d, out);
    this->expect_near("dx", dx_d, dx);
  }
}

TYPED_TEST(CudaOps, PermuteTokens) {
  using T = TypeParam;
  const int64_t rows = 30, D = 12;
  std::vector<int32_t> source(rows);
  for (int64_t r = 0; r < rows; ++r) source[r] = static_cast<int32_t>((r * 7) % rows);  // 7 is prime to 30
  const auto src = this->input(rows * D), ddst = this->input(rows * D);
  std::vector<double> dst(rows * D), dsrc(rows * D);
  permute_tokens_forward<double>(src.data(), source.data(), rows, D, dst.data());
  permute_tokens_backward<double>(ddst.data(), source.data(), rows, D, dsrc.data());
  auto source_d = upload_ints(source);
  auto src_d = upload<T>(src), ddst_d = upload<T>(ddst);
  auto dst_d = poisoned<T>(rows * D), dsrc_d = poisoned<T>(rows * D);
  cuda::permute_tokens_forward<T>(src_d.get(), source_d.get(), rows, D, dst_d.get(), *this->context);
  cuda::permute_tokens_backward<T>(ddst_d.get(), source_d.get(), rows, D, dsrc_d.get(), *this->context);
  this->expect_near("dst", dst_d, dst, 0.0);  // copies: exact
  this->expect_near("dsrc", dsrc_d, dsrc, 0.0);
}

// Routing decisions are integers: they must match the CPU exactly, ties
// included (probabilities quantised to a few levels so that ties are many).
TEST(CudaRouting, EprAndExpertSortedOrderMatchTheCpu) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t B = 6, E = 4;
  // N = 300: more tokens than threads per block (the strided loops).
  for (const auto& [N, ec] : std::vector<std::pair<int64_t, double>>{{49, 1.0}, {49, 0.5}, {49, 0.3}, {300, 0.3}}) {
    SCOPED_TRACE("N " + std::to_string(N) + ", e_c " + std::to_string(ec));
    const std::vector<int64_t> counts = tokens_per_expert(capacity_for(ec, E), N);
    std::vector<float> probs(B * N * E);
    for (float& p : probs) p = static_cast<float>(std::floor(random.uniform() * 5.0) / 5.0);
    std::vector<int32_t> expert(B * N), source(B * N);
    expert_preferred_routing<float>(probs.data(), B, N, E, counts, expert.data());
    expert_sorted_order(expert.data(), B, N, E, source.data());

    auto probs_d = upload<float>(std::vector<double>(probs.begin(), probs.end()));
    DeviceArray<int32_t> expert_d(B * N), source_d(B * N);
    MONE_CUDA_CHECK(cudaMemset(expert_d.get(), 0xff, B * N * sizeof(int32_t)));
    MONE_CUDA_CHECK(cudaMemset(source_d.get(), 0xff, B * N * sizeof(int32_t)));
    MONE_CUDA_CHECK(cudaDeviceSynchronize());  // the memsets ran on the legacy stream
    cuda::expert_preferred_routing(probs_d.get(), B, N, E, counts, expert_d.get(), context);
    cuda::expert_sorted_order(expert_d.get(), B, N, E, source_d.get(), context);
    EXPECT_EQ(download_ints(expert_d, context), expert);
    EXPECT_EQ(download_ints(source_d, context), source);

    // r of each stored row and its backward, against the CPU reference.
    const std::vector<double> probs_double(probs.begin(), probs.end());
    std::vector<double> chosen(B * N), dchosen = random.nonzero_vector(B * N), dprobs(B * N * E);
    for (double& d : dchosen) d = static_cast<float>(d);  // what the device receives
    gather_chosen_probability(probs_double.data(), expert.data(), source.data(), B * N, E, chosen.data());
    scatter_chosen_probability(dchosen.data(), expert.data(), source.data(), B * N, E, dprobs.data());
    auto chosen_d = poisoned<float>(B * N), dprobs_d = poisoned<float>(B * N * E);
    auto dchosen_d = upload<float>(dchosen);
    cuda::gather_chosen_probability(probs_d.get(), expert_d.get(), source_d.get(), B * N, E, chosen_d.get(), context);
    cuda::scatter_chosen_probability(dchosen_d.get(), expert_d.get(), source_d.get(), B * N, E, dprobs_d.get(),
                                     context);
    EXPECT_TRUE(near_reference("chosen", download(chosen_d, context), chosen, 0.0));
    EXPECT_TRUE(near_reference("dprobs", download(dprobs_d, context), dprobs, 0.0));
  }
}

TEST(CudaLoss, CrossEntropyWithLabelSmoothing) {
  MONE_SKIP_WITHOUT_GPUS(1);
  cuda::DeviceContext context;
  const TestSeed seed;
  TestRandom random(seed.value());
  const int64_t B = 33, C = 10;
  for (const double smoothing : {0.0, 0.1}) {
    const auto logits = rounded<float>(random.nonzero_vector(B * C, 0.1, 4.0));
    std::vector<int32_t> labels(B);
    for (int32_t& label : labels) label = static_cast<int32_t>(random.index(C));
    std::vector<double> probs(B * C), dlogits(B * C);
    const double loss = cross_entropy_forward<double>(logits.data(), labels.data(), B, C, probs.data(), smoothing);
    cross_entropy_backward<double>(probs.data(), labels.data(), B, C, dlogits.data(), smoothing);

    auto logits_d = upload<float>(logits), probs_d = poisoned<float>(B * C), dlogits_d = poisoned<float>(B * C);
    auto loss_d = poisoned<float>(1);
    auto labels_d = upload_ints(labels);
    cuda::cross_entropy_forward(logits_d.get(), labels_d.get(), B, C, probs_d.get(), static_cast<float>(smoothing),
                                loss_d.get(), context);
    cuda::cross_entropy_backward(probs_d.get(), labels_d.get(), B, C, dlogits_d.get(), static_cast<float>(smoothing),
                                 context);
    const std::string what = "smoothing " + std::to_string(smoothing);
    EXPECT_TRUE(near_reference("loss, " + what, download(loss_d, context), {loss}, kFp32Tolerance));
    EXPECT_TRUE(near_reference("probs, " + what, download(probs_d, context), probs, kFp32Tolerance));
    EXPECT_TRUE(near_reference("dlogits, " + what, download(dlogits_d, context), dlogits, kFp32Tolerance));
  }
}

// Bias and LayerNorm gradients go through the two-pass column sums, the
// nested weight gradients through beta = 1 GEMMs in a fixed order: two runs
// must give the same bits.
TYPED_TEST(CudaOps, WeightGradientsAreBitwiseReproducible) {
  using T = TypeParam;
  const int64_t B = 64, N = 16, D = 64, hidden = 256, M = B * N;
  const std::vector<ExpertGroup> groups = expert_groups({6, 4, 4, 2}, {8, 16, 32, 64}, B);
  const auto dy = this->input(M * hidden), x = this->input(M * D), W = this->input(D * hidden, 0.05, 0.5);
  const auto gain = this->input(D), mean = rounded<float>(this->input(M)), rstd = rounded<float>(this->input(M, 0.5, 2));
  auto dy_d = upload<T>(dy), x_d = upload<T>(x), W_d = upload<T>(W), gain_d = upload<T>(gain);
  auto mean_d = upload<float>(mean), rstd_d = upload<float>(rstd);
  std::vector<std::vector<double>> runs;
  for (int run = 0; run < 2; ++run) {
    auto dx_d = poisoned<T>(M * D);
    auto ln_dx_d = upload<T>(std::vector<double>(M * D, 0.0));
    auto dW_d = upload<float>(std::vector<double>(D * hidden, 0.0)), db_d = upload<float>(std::vector<double>(hidden, 0.0));
    auto dgain_d = upload<float>(std::vector<double>(D, 0.0)), dbias_d = upload<float>(std::vector<double>(D, 0.0));
    cuda::nested_in_backward<T>(dy_d.get(), x_d.get(), D, groups, W_d.get(), hidden, dx_d.get(), dW_d.get(),
                                db_d.get(), *this->context);
    cuda::layernorm_backward<T>(x_d.get(), x_d.get(), mean_d.get(), rstd_d.get(), gain_d.get(), M, D, ln_dx_d.get(),
                                dgain_d.get(), dbias_d.get(), *this->context);
    std::vector<double> all;
    for (const auto& part : {download(dx_d, *this->context), download(dW_d, *this->context),
                             download(db_d, *this->context), download(ln_dx_d, *this->context),
                             download(dgain_d, *this->context), download(dbias_d, *this->context)})
      all.insert(all.end(), part.begin(), part.end());
    runs.push_back(std::move(all));
  }
  EXPECT_TRUE(bitwise_same("weight gradients, run 1 vs 2", runs[0], runs[1]));
}

}  // namespace
}  // namespace mone::testing
