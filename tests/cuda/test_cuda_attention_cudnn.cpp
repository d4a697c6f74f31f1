// cuDNN's fused attention (bf16 only) against the CPU reference, in both
// token layouts, at the model's head shapes: tiny (N 49, 4 heads of 16),
// ViT-S/16 (N 197 with a class token, 6 heads of 64) and heads of 40. Its
// forward and backward are also mixed with our kernel in both orders, which
// holds only if the two agree on the lse (the natural log-sum-exp of the
// scaled scores). Tolerance: the bf16 mode's 2e-2 (device_test_support.h).
//
// The forward must be served by cuDNN on every architecture the build
// targets (sm_80 and up). The backward may be declined when cuDNN offers no
// deterministic engine for it (attention_cudnn.h): then the model runs our
// kernel, and the test checks that the report says why.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

#include "model/cuda/attention_cudnn.h"
#include "model/cuda/ops.h"
#include "model/ops.h"
#include "tests/cuda/cuda_test_fixture.h"

namespace mone::testing {
namespace {

using CudnnAttentionTest = CudaTest<bf16>;

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += "\n  " + line;
  return text;
}

// lse[(b * heads + h) * N + n] = log sum_j exp(<q_n, k_j> / sqrt(head_dim)).
std::vector<double> reference_lse(const std::vector<double>& qkv, const TokenLayout& layout, int64_t heads,
                                  int64_t D) {
  const int64_t hd = D / heads, N = layout.tokens;
  std::vector<double> lse(layout.images * heads * N);
  for (int64_t b = 0; b < layout.images; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t n = 0; n < N; ++n) {
        const double* q = qkv.data() + layout.row(b, n) * 3 * D + h * hd;
        std::vector<double> scores(N);
        double max = -INFINITY;
        for (int64_t j = 0; j < N; ++j) {
          const double* k = qkv.data() + layout.row(b, j) * 3 * D + D + h * hd;
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += q[d] * k[d];
          scores[j] = dot / std::sqrt(static_cast<double>(hd));
          max = std::max(max, scores[j]);
        }
        double sum = 0;
        for (const double s : scores) sum += std::exp(s - max);
        lse[(b * heads + h) * N + n] = max + std::log(sum);
      }
  return lse;
}

TEST_F(CudnnAttentionTest, MatchesTheReferenceAndMixesWithOurKernel) {
  struct Shape {
    int64_t B, N, heads, D;
  };
  for (const Shape shape : {Shape{3, 49, 4, 64}, Shape{2, 197, 6, 384}, Shape{3, 49, 2, 80}}) {
    const int64_t B = shape.B, N = shape.N, heads = shape.heads, D = shape.D, M = B * N;
    for (const TokenLayout layout : {TokenLayout::token_major(B, N), TokenLayout::image_major(B, N)}) {
      SCOPED_TRACE("N " + std::to_string(N) + ", " + std::to_string(heads) + " heads of " +
                   std::to_string(D / heads) + (layout.token_stride == 1 ? ", image-major" : ", token-major"));
      const auto qkv = input(M * 3 * D, 0.1, 1.5), dout = input(M * D);
      std::vector<double> out(M * D), probs(B * heads * N * N), dqkv(M * 3 * D);
      attention_forward<double>(qkv.data(), layout, heads, D, out.data(), probs.data());
      attention_backward<double>(dout.data(), qkv.data(), probs.data(), layout, heads, D, dqkv.data());
      const std::vector<double> lse = reference_lse(qkv, layout, heads, D);

      const cuda::DeviceContext& ctx = *context;
      cuda::CudnnAttention attention(ctx);
      auto qkv_d = upload<bf16>(qkv), dout_d = upload<bf16>(dout);

      // cuDNN forward, then our backward from its output and lse.
      auto out_d = poisoned<bf16>(M * D);
      auto lse_d = poisoned<float>(B * heads * N);
      ASSERT_TRUE(attention.forward(qkv_d.get(), layout, heads, D, out_d.get(), lse_d.get()))
          << "cuDNN declined the forward:" << joined(attention.report());
      expect_near("cuDNN out", out_d, out);
      expect_near("cuDNN lse", lse_d, lse);
      auto dqkv_ours = poisoned<bf16>(M * 3 * D);
      cuda::attention_backward<bf16>(dout_d.get(), qkv_d.get(), out_d.get(), lse_d.get(), layout, heads, D,
                                     dqkv_ours.get(), ctx);
      expect_near("our dqkv after the cuDNN forward", dqkv_ours, dqkv);

      // Our forward, then cuDNN's backward from its output and lse; twice,
      // bitwise equal.
      auto out_ours = poisoned<bf16>(M * D);
      auto lse_ours = poisoned<float>(B * heads * N);
      cuda::attention_forward<bf16>(qkv_d.get(), layout, heads, D, out_ours.get(), lse_ours.get(), ctx);
      auto dqkv_first = poisoned<bf16>(M * 3 * D), dqkv_second = poisoned<bf16>(M * 3 * D);
      if (!attention.backward(dout_d.get(), qkv_d.get(), out_ours.get(), lse_ours.get(), layout, heads, D,
                              dqkv_first.get())) {
        const std::string report = joined(attention.report());
        EXPECT_NE(report.find("backward"), std::string::npos) << report;
        EXPECT_NE(report.find("declined"), std::string::npos) << report;
        std::cout << "cuDNN backward not used:" << report << "\n";
        continue;
      }
      ASSERT_TRUE(attention.backward(dout_d.get(), qkv_d.get(), out_ours.get(), lse_ours.get(), layout, heads, D,
                                     dqkv_second.get()));
      expect_near("cuDNN dqkv after our forward", dqkv_first, dqkv);
      EXPECT_TRUE(bitwise_same("cuDNN dqkv, two runs", download(dqkv_first, ctx), download(dqkv_second, ctx)));
    }
  }
}

// D = 36: k and v start 72 bytes into each qkv row, short of the 16-byte
// alignment the cuDNN tensors declare, so both directions leave the shape to
// our kernel (and write nothing).
TEST_F(CudnnAttentionTest, MisalignedOperandsAreLeftToOurKernel) {
  const int64_t B = 2, N = 9, heads = 3, D = 36, M = B * N;
  const TokenLayout layout = TokenLayout::token_major(B, N);
  cuda::CudnnAttention attention(*context);
  auto qkv_d = upload<bf16>(input(M * 3 * D)), dout_d = upload<bf16>(input(M * D));
  auto out_d = poisoned<bf16>(M * D), dqkv_d = poisoned<bf16>(M * 3 * D);
  auto lse_d = poisoned<float>(B * heads * N);
  EXPECT_FALSE(attention.forward(qkv_d.get(), layout, heads, D, out_d.get(), lse_d.get()));
  EXPECT_FALSE(attention.backward(dout_d.get(), qkv_d.get(), out_d.get(), lse_d.get(), layout, heads, D,
                                  dqkv_d.get()));
  for (const double v : download(out_d, *context)) ASSERT_TRUE(std::isnan(v));
  for (const double v : download(dqkv_d, *context)) ASSERT_TRUE(std::isnan(v));
}

}  // namespace
}  // namespace mone::testing
