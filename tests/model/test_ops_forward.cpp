// Each op's forward against a naive reference written here from the method
// page's definitions (double, 1e-12 scaled error, see compare_buffers). The
// gradient checks prove backward == d(forward); these prove forward == the
// method, so the pair pins each op down.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <omp.h>

#include "model/ops.h"
#include "model/small_gemm.h"
#include "tests/common/gradcheck.h"
#include "tests/common/test_random.h"

namespace mone {
namespace {

using testing::TestRandom;
using testing::compare_buffers;
using testing::within_tolerance;

constexpr double kTolerance = 1e-12;

// y[M, out] = x[M, :in] @ W[:in, :out] + b, plain loops.
std::vector<double> naive_linear(const std::vector<double>& x, int64_t ldx, int64_t M, int64_t in,
                                 const std::vector<double>& W, int64_t ldw, const double* b, int64_t out) {
  std::vector<double> y(M * out);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double sum = b ? b[o] : 0.0;
      for (int64_t k = 0; k < in; ++k) sum += x[i * ldx + k] * W[k * ldw + o];
      y[i * out + o] = sum;
    }
  return y;
}

TEST(OpsForward, GemmAllTransposes) {
  const int64_t M = 3, N = 4, K = 5;
  TestRandom random(1);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Stored shapes with one column of padding to exercise the leading dims.
      const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, lda = a_cols + 1;
      const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N, ldb = b_cols + 1, ldc = N + 1;
      std::vector<double> A = random.nonzero_vector(a_rows * lda), B = random.nonzero_vector(b_rows * ldb);
      std::vector<double> C = random.nonzero_vector(M * ldc), expected = C;
      const double alpha = 0.7, beta = -0.3;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double sum = 0;
          for (int64_t k = 0; k < K; ++k)
            sum += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
          expected[i * ldc + j] = alpha * sum + beta * C[i * ldc + j];
        }
      gemm<double>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      EXPECT_TRUE(within_tolerance(compare_buffers("gemm", C.data(), expected.data(), M * ldc), kTolerance))
          << "transpose_a " << ta << " transpose_b " << tb;
    }
}

// The nested projections' float kernel (model/small_gemm.h) against plain
// double loops, over shapes that reach every edge of its tiling: rows not a
// multiple of 4, 6, 8 or 12, and more than two blocks of the A^T kernel for
// narrow C (70 = 2 x 32 + 6); columns with 16-, 8- and 1-wide remainders (57:
// a wide tile of AVX-512 and all three) and more than one 256-column block;
// K = 0, 1 and more than one 256- or 512-deep block; A
// strided both ways, B in place and transposed, C with a padding column that
// must stay untouched. Float against double: a K-term float sum of terms at
// most 1 in size is off by at most about K float epsilons (6e-8 each), so the
// scaled error allowed is 2.4e-7 (K + 2).
TEST(OpsForward, SmallGemmMatchesPlainLoops) {
  TestRandom random(71);
  int cases = 0;
  for (int64_t M : {1, 5, 8, 13, 30, 70})
    for (int64_t N : {1, 8, 9, 24, 33, 57, 300})
      for (int64_t K : {0, 1, 17, 600})
        for (bool a_transposed : {false, true})
          for (bool b_transposed : {false, true})
            for (int start = 0; start < 3; ++start) {  // zero, bias, accumulate
              const int64_t lda = (a_transposed ? M : K) + 2, ldb = (b_transposed ? K : N) + 3, ldc = N + 1;
              const int64_t a_stored = (a_transposed ? K : M) * lda, b_stored = (b_transposed ? N : K) * ldb;
              auto floats = [&](int64_t n) {
                std::vector<float> v(n);
                for (float& x : v) x = static_cast<float>(random.uniform(-1.0, 1.0));
                return v;
              };
              const std::vector<float> a = floats(a_stored), b = floats(b_stored), bias = floats(N);
              std::vector<float> c = floats(M * ldc);
              const std::vector<float> c_before = c;
              const StridedMatrix A{a.data(), a_transposed ? 1 : lda, a_transposed ? lda : 1};
              const float* bias_or_null = start == 1 ? bias.data() : nullptr;
              if (b_transposed)
                small_gemm_bt(M, N, K, A, b.data(), ldb, bias_or_null, start == 2, c.data(), ldc);
              else
                small_gemm(M, N, K, A, b.data(), ldb, bias_or_null, start == 2, c.data(), ldc);
              std::vector<double> got(M * ldc), expected(M * ldc);
              for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j <= N; ++j) {
                  got[i * ldc + j] = c[i * ldc + j];
                  if (j == N) {  // the padding column
                    expected[i * ldc + j] = c_before[i * ldc + j];
                    continue;
                  }
                  double sum = start == 2 ? c_before[i * ldc + j] : start == 1 ? bias[j] : 0.0;
                  for (int64_t k = 0; k < K; ++k)
                    sum += double(a[i * A.row_stride + k * A.column_stride]) *
                           double(b_transposed ? b[j * ldb + k] : b[k * ldb + j]);
                  expected[i * ldc + j] = sum;
                }
              ASSERT_TRUE(within_tolerance(compare_buffers("small_gemm", got.data(), expected.data(), M * ldc),
                                          2.4e-7 * double(K + 2)))
                  << "M " << M << " N " << N << " K " << K << " A^T " << a_transposed << " B^T " << b_transposed
                  << " start " << start;
              ++cases;
            }
  EXPECT_EQ(cases, 6 * 7 * 4 * 2 * 2 * 3);
}

// An A of unit row stride and a C narrower than a register take the kernel
// whose lanes are rows of C, whole blocks of rows only; the rows after them,
// and any other A, take the row tiles. A thread's share of a weight gradient's
// rows decides that split, so both must give the same bits: the same product
// through both, row by row, must be equal to the last bit.
TEST(OpsForward, SmallGemmNarrowKernelsAgreeBitwise) {
  TestRandom random(72);
  const int64_t M = 70, K = 600, lda = M + 2;
  std::vector<float> a(K * lda), b(K * 16), c_start(M * 16);
  for (float& x : a) x = static_cast<float>(random.uniform(-1.0, 1.0));
  for (float& x : b) x = static_cast<float>(random.uniform(-1.0, 1.0));
  for (float& x : c_start) x = static_cast<float>(random.uniform(-1.0, 1.0));
  // The same A with its rows 2 floats apart: no unit row stride, so the row tiles.
  std::vector<float> a_spread(K * 2 * lda);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < M; ++i) a_spread[k * 2 * lda + 2 * i] = a[k * lda + i];
  for (int64_t N : {1, 5, 8, 9, 15})
    for (bool accumulate : {false, true}) {
      std::vector<float> by_lanes = c_start, by_rows = c_start;
      small_gemm(M, N, K, StridedMatrix{a.data(), 1, lda}, b.data(), 16, b.data(), accumulate, by_lanes.data(), 16);
      for (int64_t i = 0; i < M; ++i)
        small_gemm(1, N, K, StridedMatrix{a_spread.data() + 2 * i, 2, 2 * lda}, b.data(), 16, b.data(), accumulate,
                   by_rows.data() + i * 16, 16);
      for (int64_t i = 0; i < M * 16; ++i)
        ASSERT_EQ(by_lanes[i], by_rows[i]) << "N " << N << " accumulate " << accumulate << " element " << i;
    }
}

TEST(OpsForward, Linear) {
  const int64_t M = 4, in = 3, out = 5, ldx = 4;
  TestRandom random(2);
  std::vector<double> x = random.nonzero_vector(M * ldx), W = random.nonzero_vector(in * out),
                      b = random.nonzero_vector(out), y(M * out);
  linear_forward(x.data(), ldx, M, in, W.data(), out, b.data(), out, y.data(), out);
  const auto expected = naive_linear(x, ldx, M, in, W, out, b.data(), out);
  EXPECT_TRUE(within_tolerance(compare_buffers("linear", y.data(), expected.data(), M * out), kTolerance));
}

TEST(OpsForward, PatchifyIsRowMajorOverPatchRowColumnChannel) {
  // Every pixel value encodes its coordinates, so a misplaced pixel is visible.
  const int64_t B = 2, H = 4, W = 6, C = 2, P = 2, grid_w = W / P, N = (H / P) * grid_w;
  std::vector<double> images(B * H * W * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t c = 0; c < C; ++c) images[((b * H + y) * W + x) * C + c] = b * 1000 + y * 100 + x * 10 + c;
  std::vector<double> patches(B * N * P * P * C, -1.0);
  patchify(images.data(), B, H, W, C, P, patches.data());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t py = 0; py < P; ++py)
        for (int64_t px = 0; px < P; ++px)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t y = (n / grid_w) * P + py, x = (n % grid_w) * P + px;
            EXPECT_EQ(patches[(b * N + n) * P * P * C + (py * P + px) * C + c], b * 1000 + y * 100 + x * 10 + c)
                << "image " << b << " token " << n << " pixel (" << py << ", " << px << ", " << c << ")";
          }
}

TEST(OpsForward, PatchEmbedAndPositionEmbed) {
  const int64_t B = 2, N = 3, patch_dim = 4, D = 5;
  TestRandom random(3);
  std::vector<double> patches = random.nonzero_vector(B * N * patch_dim), W = random.nonzero_vector(patch_dim * D),
                      bias = random.nonzero_vector(D), pos = random.nonzero_vector(N * D), out(B * N * D);
  patch_embed_forward(patches.data(), B * N, patch_dim, W.data(), bias.data(), D, out.data());
  position_embed_forward(out.data(), pos.data(), B, N, D);
  auto expected = naive_linear(patches, patch_dim, B * N, patch_dim, W, D, bias.data(), D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) expected[(b * N + n) * D + d] += pos[n * D + d];
  EXPECT_TRUE(within_tolerance(compare_buffers("embed", out.data(), expected.data(), B * N * D), kTolerance));
}

TEST(OpsForward, LayerNormWithEps1e6) {
  // One row with tiny variance makes the eps = 1e-6 visible in the result.
  const int64_t M = 3, D = 4;
  TestRandom random(4);
  std::vector<double> x = random.nonzero_vector(M * D), gain = random.nonzero_vector(D, 0.5, 1.5),
                      bias = random.nonzero_vector(D);
  for (int64_t d = 0; d < D; ++d) x[2 * D + d] = 0.3 + 1e-4 * d;
  std::vector<double> y(M * D), mean(M), rstd(M), expected(M * D), expected_mean(M), expected_rstd(M);
  layernorm_forward(x.data(), M, D, gain.data(), bias.data(), y.data(), mean.data(), rstd.data());
  for (int64_t i = 0; i < M; ++i) {
    double mu = 0, var = 0;
    for (int64_t d = 0; d < D; ++d) mu += x[i * D + d] / D;
    for (int64_t d = 0; d < D; ++d) var += (x[i * D + d] - mu) * (x[i * D + d] - mu) / D;  // biased
    expected_mean[i] = mu;
    expected_rstd[i] = 1.0 / std::sqrt(var + 1e-6);
    for (int64_t d = 0; d < D; ++d) expected[i * D + d] = (x[i * D + d] - mu) * expected_rstd[i] * gain[d] + bias[d];
  }
  EXPECT_TRUE(within_tolerance(compare_buffers("layernorm y", y.data(), expected.data(), M * D), kTolerance));
  EXPECT_TRUE(within_tolerance(compare_buffers("layernorm mean", mean.data(), expected_mean.data(), M), kTolerance));
  EXPECT_TRUE(within_tolerance(compare_buffers("layernorm rstd", rstd.data(), expected_rstd.data(), M), 1e-10));
}

const std::vector<ExpertGroup> kGroups = {{0, 2, 8}, {2, 3, 2}, {5, 2, 4}};
constexpr int64_t kRows = 7, kFull = 8;

TEST(OpsForward, NestedInUsesFirstWidthInputChannels) {
  const int64_t out = 5;
  TestRandom random(5);
  std::vector<double> x = random.nonzero_vector(kRows * kFull), W = random.nonzero_vector(kFull * out),
                      b = random.nonzero_vector(out), y(kRows * out);
  nested_in_forward(x.data(), kFull, kGroups, W.data(), b.data(), out, y.data());
  std::vector<double> expected(kRows * out);
  for (const ExpertGroup& g : kGroups)
    for (int64_t i = g.row_begin; i < g.row_begin + g.rows; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double sum = b[o];
        for (int64_t k = 0; k < g.width; ++k) sum += x[i * kFull + k] * W[k * out + o];
        expected[i * out + o] = sum;
      }
  EXPECT_TRUE(within_tolerance(compare_buffers("nested_in", y.data(), expected.data(), kRows * out), kTolerance));
}

TEST(OpsForward, NestedOutWritesFirstWidthChannelsAndZeroes) {
  const int64_t in = 5;
  TestRandom random(6);
  std::vector<double> x = random.nonzero_vector(kRows * in), W = random.nonzero_vector(in * kFull),
                      b = random.nonzero_vector(kFull), y(kRows * kFull, 123.0);  // stale values must go
  nested_out_forward(x.data(), in, kGroups, W.data(), b.data(), kFull, y.data());
  std::vector<double> expected(kRows * kFull, 0.0);
  for (const ExpertGroup& g : kGroups)
    for (int64_t i = g.row_begin; i < g.row_begin + g.rows; ++i)
      for (int64_t o = 0; o < g.width; ++o) {
        double sum = b[o];
        for (int64_t k = 0; k < in; ++k) sum += x[i * in + k] * W[k * kFull + o];
        expected[i * kFull + o] = sum;
      }
  EXPECT_TRUE(within_tolerance(compare_buffers("nested_out", y.data(), expected.data(), kRows * kFull), kTolerance));
}

// The nested projections' weight and bias gradients on 1 and on 3 threads,
// in float, bitwise: each thread owns the same columns (db, nested_in's dW)
// or rows (nested_out's dW) for every group, so each element is summed in the
// same order. The threads do not wait for each other between groups, so a
// share that depended on the group's width let two threads add into one db
// column at once; repeated, to give such a race its chances.
TEST(OpsForward, NestedGradientsAreTheSameOnAnyThreadCount) {
  const std::vector<ExpertGroup> groups = {{0, 150, 64}, {150, 150, 32}, {300, 150, 16}, {450, 150, 8}};
  const int64_t rows = 600, D = 64, hidden = 256;
  TestRandom random(73);
  auto floats = [&](int64_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(random.uniform(-1.0, 1.0));
    return v;
  };
  const std::vector<float> x_in = floats(rows * D), W_in = floats(D * hidden), dy_in = floats(rows * hidden);
  const std::vector<float> x_out = floats(rows * hidden), W_out = floats(hidden * D), dy_out = floats(rows * D);
  struct Gradients {
    std::vector<float> dW_in, db_in, dW_out, db_out;
  };
  auto gradients = [&]() {
    Gradients g{std::vector<float>(D * hidden), std::vector<float>(hidden), std::vector<float>(hidden * D),
                std::vector<float>(D)};
    std::vector<float> dx_in(rows * D), dx_out(rows * hidden);
    nested_in_backward(dy_in.data(), x_in.data(), D, groups, W_in.data(), hidden, dx_in.data(), g.dW_in.data(),
                       g.db_in.data());
    nested_out_backward(dy_out.data(), x_out.data(), hidden, groups, W_out.data(), D, dx_out.data(),
                        g.dW_out.data(), g.db_out.data());
    return g;
  };
  const int previous = omp_get_max_threads();
  omp_set_num_threads(1);
  const Gradients one = gradients();
  omp_set_num_threads(3);
  for (int repeat = 0; repeat < 30; ++repeat) {
    const Gradients many = gradients();
    ASSERT_EQ(many.db_out, one.db_out) << "nested_out db, repeat " << repeat;
    ASSERT_EQ(many.dW_out, one.dW_out) << "nested_out dW, repeat " << repeat;
    ASSERT_EQ(many.db_in, one.db_in) << "nested_in db, repeat " << repeat;
    ASSERT_EQ(many.dW_in, one.dW_in) << "nested_in dW, repeat " << repeat;
  }
  omp_set_num_threads(previous);
}

// The nested projections in float (the register-tiled kernel) against the
// same ops in double (BLAS): forward, and backward with dx, dW and db, for
// both directions, expert widths 8, 16 and 32 of a 32-wide stream and a
// 48-wide hidden layer. Float against double: 1e-5 scaled error.
TEST(OpsForward, NestedProjectionsInFloatMatchDouble) {
  const std::vector<ExpertGroup> groups = {{0, 11, 32}, {11, 9, 16}, {20, 13, 8}};
  const int64_t rows = 33, D = 32, hidden = 48;
  TestRandom random(72);
  auto both = [&](int64_t n) {
    std::vector<double> d = random.nonzero_vector(n);
    return std::make_pair(d, std::vector<float>(d.begin(), d.end()));
  };
  auto compare = [](const char* name, const std::vector<float>& f, const std::vector<double>& d) {
    const std::vector<double> widened(f.begin(), f.end());
    return within_tolerance(compare_buffers(name, widened.data(), d.data(), int64_t(d.size())), 1e-5);
  };
  for (bool into_hidden : {true, false}) {  // fc1 (nested_in) or fc2 (nested_out)
    const int64_t in = into_hidden ? D : hidden, out = into_hidden ? hidden : D;
    auto [xd, xf] = both(rows * in);
    auto [Wd, Wf] = both(in * out);
    auto [bd, bf] = both(out);
    auto [dyd, dyf] = both(rows * out);
    std::vector<double> yd(rows * out), dxd(rows * in), dWd(in * out, 0.5), dbd(out, 0.25);
    std::vector<float> yf(rows * out), dxf(rows * in), dWf(in * out, 0.5f), dbf(out, 0.25f);
    if (into_hidden) {
      nested_in_forward(xd.data(), in, groups, Wd.data(), bd.data(), out, yd.data());
      nested_in_forward(xf.data(), in, groups, Wf.data(), bf.data(), out, yf.data());
      nested_in_backward(dyd.data(), xd.data(), in, groups, Wd.data(), out, dxd.data(), dWd.data(), dbd.data());
      nested_in_backward(dyf.data(), xf.data(), in, groups, Wf.data(), out, dxf.data(), dWf.data(), dbf.data());
    } else {
      nested_out_forward(xd.data(), in, groups, Wd.data(), bd.data(), out, yd.data());
      nested_out_forward(xf.data(), in, groups, Wf.data(), bf.data(), out, yf.data());
      nested_out_backward(dyd.data(), xd.data(), in, groups, Wd.data(), out, dxd.data(), dWd.data(), dbd.data());
      nested_out_backward(dyf.data(), xf.data(), in, groups, Wf.data(), out, dxf.data(), dWf.data(), dbf.data());
    }
    SCOPED_TRACE(into_hidden ? "nested_in" : "nested_out");
    EXPECT_TRUE(compare("y", yf, yd));
    EXPECT_TRUE(compare("dx", dxf, dxd));
    EXPECT_TRUE(compare("dW", dWf, dWd));
    EXPECT_TRUE(compare("db", dbf, dbd));
  }
}

void check_attention_forward(const TokenLayout& layout, int64_t heads = 2, int64_t D = 6) {
  const int64_t hd = D / heads, N = layout.tokens, B = layout.images, rows = B * N;
  TestRandom random(7);
  std::vector<double> qkv = random.nonzero_vector(rows * 3 * D), out(rows * D), probs(B * heads * N * N);
  attention_forward(qkv.data(), layout, heads, D, out.data(), probs.data());
  std::vector<double> expected(rows * D), expected_probs(B * heads * N * N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < N; ++i) {
        const double* q = &qkv[layout.row(b, i) * 3 * D + h * hd];
        std::vector<double> score(N);
        double top = -1e300, sum = 0;
        for (int64_t j = 0; j < N; ++j) {
          const double* k = &qkv[layout.row(b, j) * 3 * D + D + h * hd];
          score[j] = 0;
          for (int64_t d = 0; d < hd; ++d) score[j] += q[d] * k[d] / std::sqrt(static_cast<double>(hd));
          top = std::max(top, score[j]);
        }
        for (double& s : score) sum += s = std::exp(s - top);
        for (int64_t j = 0; j < N; ++j) expected_probs[((b * heads + h) * N + i) * N + j] = score[j] / sum;
        for (int64_t d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < N; ++j) acc += score[j] / sum * qkv[layout.row(b, j) * 3 * D + 2 * D + h * hd + d];
          expected[layout.row(b, i) * D + h * hd + d] = acc;
        }
      }
  EXPECT_TRUE(within_tolerance(compare_buffers("attention out", out.data(), expected.data(), rows * D), kTolerance));
  EXPECT_TRUE(within_tolerance(
      compare_buffers("attention probs [B,H,N,N]", probs.data(), expected_probs.data(), B * heads * N * N), kTolerance));
}

TEST(OpsForward, AttentionImageMajor) { check_attention_forward(TokenLayout::image_major(2, 4)); }
TEST(OpsForward, AttentionTokenMajor) { check_attention_forward(TokenLayout::token_major(2, 4)); }
// Head dims of the fused kernels; 5 and 21 tokens: a block of 4 query rows and a
// tail, more than one vector of score columns.
TEST(OpsForward, FusedAttentionHeadDim8) { check_attention_forward(TokenLayout::token_major(2, 5), 2, 16); }
TEST(OpsForward, FusedAttentionHeadDim16) { check_attention_forward(TokenLayout::image_major(2, 21), 2, 32); }
TEST(OpsForward, AttentionHeadDim64) { check_attention_forward(TokenLayout::image_major(2, 5), 2, 128); }

// The step's fused kernels against the OpenBLAS reference in float, forward
// and backward: tiny's shape (49 tokens, head dim 16), and 100 tokens at head
// dim 8. Scaled error 1e-5: float, different summation orders.
void check_fused_attention_in_float(const TokenLayout& layout, int64_t heads, int64_t D) {
  const int64_t N = layout.tokens, rows = layout.images * N, P = layout.images * heads * N * N;
  TestRandom random(11);
  std::vector<float> qkv(rows * 3 * D), dout(rows * D);
  for (float& v : qkv) v = static_cast<float>(random.uniform(-2.0, 2.0));
  for (float& v : dout) v = static_cast<float>(random.uniform(-1.0, 1.0));
  std::vector<float> out(rows * D), probs(P), dqkv(rows * 3 * D), ref_out(rows * D), ref_probs(P), ref_dqkv(rows * 3 * D);
  attention_forward(qkv.data(), layout, heads, D, out.data(), probs.data());
  attention_backward(dout.data(), qkv.data(), probs.data(), layout, heads, D, dqkv.data());
  attention_reference_forward(qkv.data(), layout, heads, D, ref_out.data(), ref_probs.data());
  attention_reference_backward(dout.data(), qkv.data(), ref_probs.data(), layout, heads, D, ref_dqkv.data());
  EXPECT_TRUE(within_tolerance(compare_buffers("fused attention out", out.data(), ref_out.data(), rows * D), 1e-5));
  EXPECT_TRUE(within_tolerance(compare_buffers("fused attention probs", probs.data(), ref_probs.data(), P), 1e-5));
  EXPECT_TRUE(
      within_tolerance(compare_buffers("fused attention dqkv", dqkv.data(), ref_dqkv.data(), rows * 3 * D), 1e-5));
}

TEST(OpsForward, FusedAttentionMatchesReferenceTiny) {
  check_fused_attention_in_float(TokenLayout::token_major(3, 49), 4, 64);
}
TEST(OpsForward, FusedAttentionMatchesReferenceHeadDim8) {
  check_fused_attention_in_float(TokenLayout::image_major(2, 100), 3, 24);
}

// An image's attention must not depend on the batch it is in (data parallel
// splits batches): the fused kernels on 5 images against each image alone, bitwise.
TEST(OpsForward, FusedAttentionOfAnImageIsTheSameInAnyBatch) {
  const int64_t B = 5, N = 49, heads = 4, D = 64;
  TestRandom random(13);
  std::vector<float> qkv(B * N * 3 * D), dout(B * N * D);
  for (float& v : qkv) v = static_cast<float>(random.uniform(-2.0, 2.0));
  for (float& v : dout) v = static_cast<float>(random.uniform(-1.0, 1.0));
  const TokenLayout all = TokenLayout::token_major(B, N);
  std::vector<float> out(B * N * D), probs(B * heads * N * N), dqkv(B * N * 3 * D);
  attention_forward(qkv.data(), all, heads, D, out.data(), probs.data());
  attention_backward(dout.data(), qkv.data(), probs.data(), all, heads, D, dqkv.data());
  const TokenLayout one = TokenLayout::token_major(1, N);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<float> q1(N * 3 * D), g1(N * D), o1(N * D), p1(heads * N * N), d1(N * 3 * D);
    for (int64_t n = 0; n < N; ++n) {
      std::copy_n(&qkv[all.row(b, n) * 3 * D], 3 * D, &q1[n * 3 * D]);
      std::copy_n(&dout[all.row(b, n) * D], D, &g1[n * D]);
    }
    attention_forward(q1.data(), one, heads, D, o1.data(), p1.data());
    attention_backward(g1.data(), q1.data(), p1.data(), one, heads, D, d1.data());
    for (int64_t n = 0; n < N; ++n) {
      ASSERT_TRUE(std::equal(o1.begin() + n * D, o1.begin() + (n + 1) * D, out.begin() + all.row(b, n) * D)) << b;
      ASSERT_TRUE(std::equal(d1.begin() + n * 3 * D, d1.begin() + (n + 1) * 3 * D, dqkv.begin() + all.row(b, n) * 3 * D))
          << b;
    }
  }
}

TEST(OpsForward, GeluIsTheTanhApproximation) {
  const std::vector<double> x = {-4.0, -1.5, -0.3, 0.0, 0.2, 1.0, 2.5, 6.0};
  std::vector<double> y(x.size()), expected(x.size());
  gelu_forward(x.data(), static_cast<int64_t>(x.size()), y.data());
  for (size_t i = 0; i < x.size(); ++i)
    expected[i] = 0.5 * x[i] * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
  EXPECT_TRUE(within_tolerance(compare_buffers("gelu", y.data(), expected.data(), 8), kTolerance));
}

// The exact form against values of x Phi(x) from tables of the normal CDF.
TEST(OpsForward, ErfGeluIsXTimesTheNormalCdf) {
  const std::vector<double> x = {-2.0, -1.0, 0.0, 0.5, 1.0, 3.0};
  const std::vector<double> phi = {0.0227501319, 0.1586552539, 0.5, 0.6914624613, 0.8413447461, 0.9986501020};
  std::vector<double> y(x.size()), expected(x.size());
  gelu_forward(x.data(), static_cast<int64_t>(x.size()), y.data(), Gelu::erf);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i] * phi[i], 1e-9) << x[i];
}

TEST(OpsForward, RouterSoftmax) {
  const int64_t M = 4, D = 3, E = 4;
  TestRandom random(8);
  std::vector<double> x = random.nonzero_vector(M * D), W = random.nonzero_vector(D * E), b = random.nonzero_vector(E),
                      probs(M * E);
  router_forward(x.data(), M, D, W.data(), b.data(), E, probs.data());
  auto expected = naive_linear(x, D, M, D, W, E, b.data(), E);
  for (int64_t i = 0; i < M; ++i) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += expected[i * E + e] = std::exp(expected[i * E + e]);
    for (int64_t e = 0; e < E; ++e) expected[i * E + e] /= sum;
  }
  EXPECT_TRUE(within_tolerance(compare_buffers("router", probs.data(), expected.data(), M * E), kTolerance));
}

TEST(OpsForward, PermutationAndScaledResidualAndPool) {
  const int64_t B = 2, N = 3, D = 2, rows = B * N;
  TestRandom random(9);
  std::vector<double> src = random.nonzero_vector(rows * D), dst(rows * D);
  const std::vector<int32_t> source_of_row = {4, 1, 0, 5, 2, 3};
  permute_tokens_forward(src.data(), source_of_row.data(), rows, D, dst.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(dst[r * D + d], src[source_of_row[r] * D + d]);

  std::vector<double> z = random.nonzero_vector(rows * D), m = random.nonzero_vector(rows * D),
                      r = random.uniform_vector(rows, 0.1, 0.9), out(rows * D), expected(rows * D);
  const double alpha = -0.6;
  scaled_residual_forward(z.data(), m.data(), r.data(), alpha, rows, D, out.data());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t d = 0; d < D; ++d) expected[i * D + d] = z[i * D + d] + (alpha * r[i] + 1.0) * m[i * D + d];
  EXPECT_TRUE(within_tolerance(compare_buffers("scaled_residual", out.data(), expected.data(), rows * D), kTolerance));

  for (const TokenLayout& layout : {TokenLayout::image_major(B, N), TokenLayout::token_major(B, N)}) {
    std::vector<double> pooled(B * D), expected_pool(B * D, 0.0);
    mean_pool_forward(z.data(), layout, D, pooled.data());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) expected_pool[b * D + d] += z[layout.row(b, n) * D + d] / N;
    EXPECT_TRUE(within_tolerance(compare_buffers("mean_pool", pooled.data(), expected_pool.data(), B * D), kTolerance))
        << "token_stride " << layout.token_stride;
  }
}

TEST(OpsForward, CrossEntropyIsMeanOverBatch) {
  const int64_t B = 3, C = 4;
  const std::vector<int32_t> labels = {1, 3, 0};
  TestRandom random(10);
  std::vector<double> logits = random.nonzero_vector(B * C, 0.1, 3.0), probs(B * C);
  const double loss = cross_entropy_forward(logits.data(), labels.data(), B, C, probs.data());
  double expected = 0;
  std::vector<double> expected_probs(B * C);
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(logits[b * C + c]);
    for (int64_t c = 0; c < C; ++c) expected_probs[b * C + c] = std::exp(logits[b * C + c]) / sum;
    expected += (std::log(sum) - logits[b * C + labels[b]]) / B;
  }
  EXPECT_NEAR(loss, expected, kTolerance);
  EXPECT_TRUE(within_tolerance(compare_buffers("cross_entropy probs", probs.data(), expected_probs.data(), B * C), kTolerance));
}

TEST(OpsForward, CrossEntropyWithLabelSmoothing) {
  const int64_t B = 2, C = 4;
  const double e = 0.1;
  const std::vector<int32_t> labels = {2, 0};
  TestRandom random(11);
  std::vector<double> logits = random.nonzero_vector(B * C, 0.1, 3.0), probs(B * C);
  const double loss = cross_entropy_forward(logits.data(), labels.data(), B, C, probs.data(), e);
  // -sum_c q_c log p_c with q = (1 - e) onehot + e / C, averaged over the batch.
  double expected = 0;
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(logits[b * C + c]);
    for (int64_t c = 0; c < C; ++c) {
      const double q = (c == labels[b] ? 1.0 - e : 0.0) + e / C;
      expected -= q * std::log(std::exp(logits[b * C + c]) / sum) / B;
    }
  }
  EXPECT_NEAR(loss, expected, kTolerance);
}

}  // namespace
}  // namespace mone
