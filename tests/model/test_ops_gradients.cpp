// Finite-difference gradient check of every op in model/ops.h and model/ops_moe.h, in double.
//
// Method (tests/common/gradcheck.h): random non-zero inputs, L = sum(w * out)
// with a random projection w, central differences with eps = 1e-6 for every
// input element and every parameter element. The backward's write convention
// is part of the check: "+=" buffers are pre-filled with a random value that
// is subtracted afterwards, "=" buffers with a large sentinel.
//
// Tolerance: 1e-6 relative error per element (denominator floored at 1e-2, see
// gradcheck.h). Round-off of the central difference in double is ~1e-10 and
// its truncation error ~eps^2 ~ 1e-12, so a correct backward lands far below;
// a wrong term in a backward gives an error of order one.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "model/ops.h"
#include "model/ops_moe.h"
#include "tests/common/gradcheck.h"
#include "tests/common/test_random.h"

namespace mone {
namespace {

using testing::GradWrite;
using testing::OpGradientCheck;
using testing::TestRandom;
using testing::all_within_tolerance;

constexpr double kTolerance = 1e-6;

// Indices of the first `cols` columns of every row of a [rows, ld] buffer.
std::vector<int64_t> leading_columns(int64_t rows, int64_t ld, int64_t cols) {
  std::vector<int64_t> indices;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) indices.push_back(r * ld + c);
  return indices;
}

TEST(OpGradients, LinearWithLeadingDimensions) {
  // x and dx are strided (ldx > in) and y/dy too (ldy > out), as when the
  // model reads a slice of a wider activation.
  const int64_t M = 5, in = 4, out = 3, ldx = 6, ldy = 5;
  TestRandom random(11);
  std::vector<double> x = random.nonzero_vector(M * ldx), W = random.nonzero_vector(in * out),
                      b = random.nonzero_vector(out), dx, dW, db;
  OpGradientCheck check(12);
  check.add_input("linear x", &x, &dx, GradWrite::assign, leading_columns(M, ldx, in));
  check.add_input("linear W", &W, &dW, GradWrite::accumulate);
  check.add_input("linear b", &b, &db, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        std::vector<double> strided(M * ldy, 0.0);
        linear_forward(x.data(), ldx, M, in, W.data(), out, b.data(), out, strided.data(), ldy);
        y.clear();
        for (int64_t r = 0; r < M; ++r)
          for (int64_t c = 0; c < out; ++c) y.push_back(strided[r * ldy + c]);
      },
      [&](const std::vector<double>& dy) {
        std::vector<double> strided(M * ldy, 1e6);  // padding must not be read
        for (int64_t r = 0; r < M; ++r)
          for (int64_t c = 0; c < out; ++c) strided[r * ldy + c] = dy[r * out + c];
        linear_backward(strided.data(), ldy, x.data(), ldx, M, in, W.data(), out, out, dx.data(), ldx,
                        dW.data(), db.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
  // The padding columns of dx are not the op's to write.
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = in; c < ldx; ++c) EXPECT_EQ(dx[r * ldx + c], testing::kAssignSentinel) << "dx padding written at row " << r;
}

TEST(OpGradients, LinearWithoutInputOrBiasGradient) {
  // dx and db may be null (the first layer has no input gradient); dW must
  // still be right.
  const int64_t M = 4, in = 3, out = 5;
  TestRandom random(13);
  std::vector<double> x = random.nonzero_vector(M * in), W = random.nonzero_vector(in * out),
                      b = random.nonzero_vector(out), dW;
  OpGradientCheck check(14);
  check.add_input("linear W (dx, db null)", &W, &dW, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        y.assign(M * out, 0.0);
        linear_forward(x.data(), in, M, in, W.data(), out, b.data(), out, y.data(), out);
      },
      [&](const std::vector<double>& dy) {
        linear_backward<double>(dy.data(), out, x.data(), in, M, in, W.data(), out, out, nullptr, in,
                                dW.data(), nullptr);
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, PatchEmbedding) {
  const int64_t rows = 6, patch_dim = 8, D = 5;
  TestRandom random(21);
  std::vector<double> patches = random.nonzero_vector(rows * patch_dim), weight = random.nonzero_vector(patch_dim * D),
                      bias = random.nonzero_vector(D), dweight, dbias;
  OpGradientCheck check(22);
  check.add_input("patch_embed weight", &weight, &dweight, GradWrite::accumulate);
  check.add_input("patch_embed bias", &bias, &dbias, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(rows * D, 0.0);
        patch_embed_forward(patches.data(), rows, patch_dim, weight.data(), bias.data(), D, out.data());
      },
      [&](const std::vector<double>& dout) {
        patch_embed_backward(dout.data(), patches.data(), rows, patch_dim, D, dweight.data(), dbias.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, PositionEmbedding) {
  const int64_t B = 3, N = 4, D = 5;
  TestRandom random(31);
  std::vector<double> x = random.nonzero_vector(B * N * D), pos = random.nonzero_vector(N * D), dpos;
  OpGradientCheck check(32);
  check.add_input("pos_embed", &pos, &dpos, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out = x;  // the op adds in place
        position_embed_forward(out.data(), pos.data(), B, N, D);
      },
      [&](const std::vector<double>& dout) { position_embed_backward(dout.data(), B, N, D, dpos.data()); });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, LayerNorm) {
  const int64_t M = 4, D = 6;
  TestRandom random(41);
  std::vector<double> x = random.nonzero_vector(M * D), gain = random.nonzero_vector(D, 0.5, 1.5),
                      bias = random.nonzero_vector(D), dx, dgain, dbias;
  std::vector<double> mean(M), rstd(M);
  OpGradientCheck check(42);
  check.add_input("layernorm x (adds)", &x, &dx, GradWrite::accumulate);
  check.add_input("layernorm gain", &gain, &dgain, GradWrite::accumulate);
  check.add_input("layernorm bias", &bias, &dbias, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        y.assign(M * D, 0.0);
        layernorm_forward(x.data(), M, D, gain.data(), bias.data(), y.data(), mean.data(), rstd.data());
      },
      [&](const std::vector<double>& dy) {
        std::vector<double> y(M * D);
        layernorm_forward(x.data(), M, D, gain.data(), bias.data(), y.data(), mean.data(), rstd.data());
        layernorm_backward(dy.data(), x.data(), mean.data(), rstd.data(), gain.data(), M, D, dx.data(),
                           dgain.data(), dbias.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

// Groups in no particular order of width (the original-order layout runs
// them per run of same-expert tokens), one of them at full width.
const std::vector<ExpertGroup> kMixedGroups = {{0, 2, 8}, {2, 3, 2}, {5, 2, 4}};
constexpr int64_t kMixedRows = 7, kMixedFullWidth = 8;

TEST(OpGradients, NestedInProjection) {
  const int64_t M = kMixedRows, D_in = kMixedFullWidth, out = 6;
  TestRandom random(51);
  std::vector<double> x = random.nonzero_vector(M * D_in), W = random.nonzero_vector(D_in * out),
                      b = random.nonzero_vector(out), dx, dW, db;
  OpGradientCheck check(52);
  // dx is assigned in full: dy @ W[:width]^T inside the width, 0 beyond it
  // (the sentinel shows any element left unwritten).
  check.add_input("nested_in x", &x, &dx, GradWrite::assign);
  check.add_input("nested_in W", &W, &dW, GradWrite::accumulate);
  check.add_input("nested_in b", &b, &db, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        y.assign(M * out, 0.0);
        nested_in_forward(x.data(), D_in, kMixedGroups, W.data(), b.data(), out, y.data());
      },
      [&](const std::vector<double>& dy) {
        nested_in_backward(dy.data(), x.data(), D_in, kMixedGroups, W.data(), out, dx.data(), dW.data(),
                           db.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, NestedOutProjection) {
  const int64_t M = kMixedRows, in = 6, D_out = kMixedFullWidth;
  TestRandom random(61);
  std::vector<double> x = random.nonzero_vector(M * in), W = random.nonzero_vector(in * D_out),
                      b = random.nonzero_vector(D_out), dx, dW, db;
  OpGradientCheck check(62);
  check.add_input("nested_out x", &x, &dx, GradWrite::assign);
  check.add_input("nested_out W", &W, &dW, GradWrite::accumulate);
  check.add_input("nested_out b", &b, &db, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        y.assign(M * D_out, 0.0);
        nested_out_forward(x.data(), in, kMixedGroups, W.data(), b.data(), D_out, y.data());
      },
      [&](const std::vector<double>& dy) {
        nested_out_backward(dy.data(), x.data(), in, kMixedGroups, W.data(), D_out, dx.data(), dW.data(),
                            db.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

// fc2 on GELU(pre), the pair the step's gelu_nested_out_backward
// differentiates, with either GELU.
void check_gelu_then_nested_out(Gelu kind) {
  const int64_t M = kMixedRows, in = 6, D_out = kMixedFullWidth;
  TestRandom random(65);
  std::vector<double> pre = random.nonzero_vector(M * in, 0.05, 3.0), W = random.nonzero_vector(in * D_out),
                      b = random.nonzero_vector(D_out), dpre, dW, db;
  std::vector<double> hidden(M * in);
  OpGradientCheck check(66);
  check.add_input("gelu_nested_out pre", &pre, &dpre, GradWrite::assign);
  check.add_input("gelu_nested_out W", &W, &dW, GradWrite::accumulate);
  check.add_input("gelu_nested_out b", &b, &db, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        gelu_forward(pre.data(), M * in, hidden.data(), kind);
        y.assign(M * D_out, 0.0);
        nested_out_forward(hidden.data(), in, kMixedGroups, W.data(), b.data(), D_out, y.data());
      },
      [&](const std::vector<double>& dy) {
        gelu_forward(pre.data(), M * in, hidden.data(), kind);
        gelu_nested_out_backward(dy.data(), hidden.data(), pre.data(), in, kMixedGroups, W.data(), D_out,
                                 dpre.data(), dW.data(), db.data(), kind);
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance)) << gelu_name(kind);
}

TEST(OpGradients, GeluThenNestedOutProjection) { check_gelu_then_nested_out(Gelu::tanh); }
TEST(OpGradients, ErfGeluThenNestedOutProjection) { check_gelu_then_nested_out(Gelu::erf); }

// fc1 with its GELU gives exactly the two ops one after the other.
TEST(OpGradients, NestedInGeluIsNestedInThenGelu) {
  const int64_t M = kMixedRows, D_in = kMixedFullWidth, out = 6;
  TestRandom random(67);
  const std::vector<double> x = random.nonzero_vector(M * D_in), W = random.nonzero_vector(D_in * out),
                            b = random.nonzero_vector(out);
  std::vector<double> pre(M * out), y(M * out), expected_pre(M * out), expected(M * out);
  nested_in_gelu_forward(x.data(), D_in, kMixedGroups, W.data(), b.data(), out, pre.data(), y.data());
  nested_in_forward(x.data(), D_in, kMixedGroups, W.data(), b.data(), out, expected_pre.data());
  gelu_forward(expected_pre.data(), M * out, expected.data());
  EXPECT_EQ(pre, expected_pre);
  EXPECT_EQ(y, expected);
}

// head_dim 3 (the default): the reference path, and a 1/sqrt(head_dim) scale that
// is not 1/sqrt(2^k); head_dim 8 or 16: the fused kernels.
void check_attention(const TokenLayout& layout, uint64_t seed, int64_t heads = 2, int64_t D = 6) {
  const int64_t rows = layout.images * layout.tokens;
  TestRandom random(seed);
  std::vector<double> qkv = random.nonzero_vector(rows * 3 * D), dqkv;
  std::vector<double> probs(layout.images * heads * layout.tokens * layout.tokens);
  OpGradientCheck check(seed + 1);
  check.add_input("attention qkv", &qkv, &dqkv, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(rows * D, 0.0);
        attention_forward(qkv.data(), layout, heads, D, out.data(), probs.data());
      },
      [&](const std::vector<double>& dout) {
        std::vector<double> out(rows * D);
        attention_forward(qkv.data(), layout, heads, D, out.data(), probs.data());
        attention_backward(dout.data(), qkv.data(), probs.data(), layout, heads, D, dqkv.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, AttentionImageMajor) { check_attention(TokenLayout::image_major(2, 3), 71); }
TEST(OpGradients, AttentionTokenMajor) { check_attention(TokenLayout::token_major(2, 3), 73); }
TEST(OpGradients, FusedAttentionHeadDim8) { check_attention(TokenLayout::token_major(2, 5), 75, 2, 16); }
TEST(OpGradients, FusedAttentionHeadDim16) { check_attention(TokenLayout::image_major(1, 18), 77, 1, 16); }

TEST(OpGradients, Gelu) {
  const int64_t n = 24;
  TestRandom random(81);
  std::vector<double> x = random.nonzero_vector(n, 0.05, 3.0), dx;  // both tails and the bend
  OpGradientCheck check(82);
  check.add_input("gelu x", &x, &dx, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& y) {
        y.assign(n, 0.0);
        gelu_forward(x.data(), n, y.data());
      },
      [&](const std::vector<double>& dy) { gelu_backward(dy.data(), x.data(), n, dx.data()); });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, GeluInPlaceMatchesOutOfPlace) {
  // The header allows y == x and dx == dy; the model relies on it.
  const int64_t n = 17;
  TestRandom random(83);
  const std::vector<double> x = random.nonzero_vector(n, 0.05, 3.0), dy = random.nonzero_vector(n);
  std::vector<double> y(n), in_place = x, dx(n), dx_in_place = dy;
  gelu_forward(x.data(), n, y.data());
  gelu_forward(in_place.data(), n, in_place.data());
  gelu_backward(dy.data(), x.data(), n, dx.data());
  gelu_backward(dx_in_place.data(), x.data(), n, dx_in_place.data());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(y[i], in_place[i]) << i;
    EXPECT_EQ(dx[i], dx_in_place[i]) << i;
  }
}

TEST(OpGradients, RouterLinearSoftmax) {
  const int64_t M = 5, D = 4, E = 3;
  TestRandom random(91);
  std::vector<double> x = random.nonzero_vector(M * D), W = random.nonzero_vector(D * E),
                      b = random.nonzero_vector(E), dx, dW, db;
  OpGradientCheck check(92);
  check.add_input("router x (adds)", &x, &dx, GradWrite::accumulate);
  check.add_input("router W", &W, &dW, GradWrite::accumulate);
  check.add_input("router b", &b, &db, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& probs) {
        probs.assign(M * E, 0.0);
        router_forward(x.data(), M, D, W.data(), b.data(), E, probs.data());
      },
      [&](const std::vector<double>& dprobs) {
        std::vector<double> probs(M * E);
        router_forward(x.data(), M, D, W.data(), b.data(), E, probs.data());
        router_backward(dprobs.data(), probs.data(), x.data(), M, D, W.data(), E, dx.data(), dW.data(),
                        db.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, TokenPermutation) {
  const int64_t rows = 6, D = 3;
  const std::vector<int32_t> source_of_row = {3, 0, 5, 1, 4, 2};
  TestRandom random(101);
  std::vector<double> src = random.nonzero_vector(rows * D), dsrc;
  OpGradientCheck check(102);
  check.add_input("permute src", &src, &dsrc, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& dst) {
        dst.assign(rows * D, 0.0);
        permute_tokens_forward(src.data(), source_of_row.data(), rows, D, dst.data());
      },
      [&](const std::vector<double>& ddst) {
        permute_tokens_backward(ddst.data(), source_of_row.data(), rows, D, dsrc.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

// r of each stored row from the router probabilities (original order), and
// its backward, the scatter.
TEST(OpGradients, ChosenProbabilityGatherAndScatter) {
  const int64_t rows = 6, E = 3;
  const std::vector<int32_t> source_of_row = {3, 0, 5, 1, 4, 2};
  const std::vector<int32_t> expert_of_token = {2, 0, 1, 2, 0, 1};
  TestRandom random(105);
  std::vector<double> probs = random.nonzero_vector(rows * E), dprobs;
  OpGradientCheck check(106);
  check.add_input("gather probs", &probs, &dprobs, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& chosen) {
        chosen.assign(rows, 0.0);
        gather_chosen_probability(probs.data(), expert_of_token.data(), source_of_row.data(), rows, E,
                                  chosen.data());
      },
      [&](const std::vector<double>& dchosen) {
        scatter_chosen_probability(dchosen.data(), expert_of_token.data(), source_of_row.data(), rows, E,
                                   dprobs.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, ResidualAdd) {
  const int64_t n = 10;
  TestRandom random(107);
  std::vector<double> x = random.nonzero_vector(n), y = random.nonzero_vector(n), dy;
  OpGradientCheck check(108);
  check.add_input("add y", &y, &dy, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out = x;
        add_inplace(out.data(), y.data(), n);
      },
      [&](const std::vector<double>& dout) { dy = dout; });  // d(x + y)/dy is the identity
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, ScaledResidual) {
  const int64_t M = 4, D = 5;
  TestRandom random(111);
  std::vector<double> z = random.nonzero_vector(M * D), m = random.nonzero_vector(M * D),
                      r = random.uniform_vector(M, 0.05, 0.95), alpha = {0.7}, dz, dm, dr, dalpha;
  OpGradientCheck check(112);
  // dz = dout is the caller's job (residual); checking it pins the forward's
  // coefficient of z to 1.
  check.add_input("scaled_residual z (identity)", &z, &dz, GradWrite::assign);
  check.add_input("scaled_residual m", &m, &dm, GradWrite::assign);
  check.add_input("scaled_residual r", &r, &dr, GradWrite::accumulate);
  check.add_input("scaled_residual alpha", &alpha, &dalpha, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(M * D, 0.0);
        scaled_residual_forward(z.data(), m.data(), r.data(), alpha[0], M, D, out.data());
      },
      [&](const std::vector<double>& dout) {
        dz = dout;
        scaled_residual_backward(dout.data(), m.data(), r.data(), alpha[0], M, D, dm.data(), dr.data(),
                                 dalpha.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

void check_mean_pool(const TokenLayout& layout, uint64_t seed) {
  const int64_t D = 4, rows = layout.images * layout.tokens;
  TestRandom random(seed);
  std::vector<double> x = random.nonzero_vector(rows * D), dx;
  OpGradientCheck check(seed + 1);
  check.add_input("mean_pool x", &x, &dx, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(layout.images * D, 0.0);
        mean_pool_forward(x.data(), layout, D, out.data());
      },
      [&](const std::vector<double>& dout) { mean_pool_backward(dout.data(), layout, D, dx.data()); });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, MeanPoolImageMajor) { check_mean_pool(TokenLayout::image_major(3, 5), 121); }
TEST(OpGradients, MeanPoolTokenMajor) { check_mean_pool(TokenLayout::token_major(3, 5), 123); }

void check_cross_entropy(double label_smoothing, uint64_t seed) {
  const int64_t B = 3, C = 4;
  const std::vector<int32_t> labels = {2, 0, 3};
  TestRandom random(seed);
  std::vector<double> logits = random.nonzero_vector(B * C, 0.1, 2.0), dlogits, probs(B * C);
  OpGradientCheck check(seed + 1);
  check.add_input("cross_entropy logits", &logits, &dlogits, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& loss) {
        loss = {cross_entropy_forward(logits.data(), labels.data(), B, C, probs.data(), label_smoothing)};
      },
      [&](const std::vector<double>& dloss) {
        cross_entropy_forward(logits.data(), labels.data(), B, C, probs.data(), label_smoothing);
        cross_entropy_backward(probs.data(), labels.data(), B, C, dlogits.data(), label_smoothing);
        for (double& g : dlogits) g *= dloss[0];  // the op returns dL/dlogits of the loss itself
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance)) << "label smoothing " << label_smoothing;
}

TEST(OpGradients, CrossEntropy) { check_cross_entropy(0.0, 131); }
TEST(OpGradients, CrossEntropyWithLabelSmoothing) { check_cross_entropy(0.1, 133); }

// In-place distillation's loss, with respect to the student's logits (the
// teacher's are detached), at temperature 1 and at 2.
void check_distillation(double temperature, uint64_t seed) {
  const int64_t B = 3, C = 4;
  const double weight = 0.7;
  TestRandom random(seed);
  std::vector<double> logits = random.nonzero_vector(B * C, 0.1, 2.0), dlogits;
  const std::vector<double> teacher = random.nonzero_vector(B * C, 0.1, 2.0);
  std::vector<double> soft(B * C), teacher_soft(B * C);
  OpGradientCheck check(seed + 1);
  check.add_input("distillation logits", &logits, &dlogits, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& loss) {
        loss = {weight * distillation_forward(logits.data(), teacher.data(), B, C, temperature, soft.data(),
                                              teacher_soft.data())};
      },
      [&](const std::vector<double>& dloss) {
        distillation_forward(logits.data(), teacher.data(), B, C, temperature, soft.data(), teacher_soft.data());
        distillation_backward(soft.data(), teacher_soft.data(), B, C, temperature, weight * dloss[0], dlogits.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance)) << "temperature " << temperature;
}

TEST(OpGradients, Distillation) { check_distillation(1.0, 135); }
TEST(OpGradients, DistillationAtTemperatureTwo) { check_distillation(2.0, 137); }

// KL(q || q) = 0, and tau^2 KL against a hand-computed pair.
TEST(OpGradients, DistillationIsZeroAgainstItselfAndMatchesByHand) {
  const std::vector<double> z = {1.0, -0.5, 0.25}, t = {0.0, 1.0, 2.0};
  std::vector<double> soft(3), teacher_soft(3);
  EXPECT_NEAR(distillation_forward(z.data(), z.data(), 1, 3, 2.0, soft.data(), teacher_soft.data()), 0.0, 1e-15);
  const double tau = 2.0;
  double zs = 0, ts = 0;
  for (int c = 0; c < 3; ++c) zs += std::exp(z[c] / tau), ts += std::exp(t[c] / tau);
  double kl = 0;
  for (int c = 0; c < 3; ++c) {
    const double q = std::exp(t[c] / tau) / ts, p = std::exp(z[c] / tau) / zs;
    kl += q * std::log(q / p);
  }
  EXPECT_NEAR(distillation_forward(z.data(), t.data(), 1, 3, tau, soft.data(), teacher_soft.data()), tau * tau * kl,
              1e-14);
}

// ---- Mobile V-MoE (model/ops_moe.h).

TEST(OpGradients, ImageTopK) {
  const int64_t B = 3, E = 4, k = 2;
  TestRandom random(201);
  std::vector<double> probs = random.nonzero_vector(B * E), dprobs;
  for (double& p : probs) p = std::abs(p) + 0.1;  // positive and apart, as a softmax's
  std::vector<int32_t> experts(B * k);
  OpGradientCheck check(202);
  check.add_input("top-k probs", &probs, &dprobs, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& weights) {
        weights.assign(B * k, 0.0);
        image_top_k_forward(probs.data(), B, E, k, experts.data(), weights.data());
      },
      [&](const std::vector<double>& dweights) {
        image_top_k_backward(dweights.data(), probs.data(), experts.data(), B, E, k, dprobs.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, DispatchTopTwo) {
  const int64_t B = 3, k = 2, N = 2, D = 3;
  const std::vector<int32_t> position_of_slot = {0, 4, 2, 1, 5, 3};
  TestRandom random(211);
  std::vector<double> x = random.nonzero_vector(B * N * D), dx;
  OpGradientCheck check(212);
  check.add_input("dispatch x", &x, &dx, GradWrite::assign);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(B * k * N * D, 0.0);
        moe_dispatch_forward(x.data(), position_of_slot.data(), B, k, N, D, out.data());
      },
      [&](const std::vector<double>& dout) {
        moe_dispatch_backward(dout.data(), position_of_slot.data(), B, k, N, D, dx.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

TEST(OpGradients, CombineTopTwo) {
  const int64_t B = 3, k = 2, N = 2, D = 3;
  const std::vector<int32_t> position_of_slot = {0, 4, 2, 1, 5, 3};
  TestRandom random(221);
  std::vector<double> z = random.nonzero_vector(B * N * D), y = random.nonzero_vector(B * k * N * D),
                      w = random.nonzero_vector(B * k), dy, dw;
  OpGradientCheck check(222);
  check.add_input("combine y", &y, &dy, GradWrite::assign);
  check.add_input("combine weights (adds)", &w, &dw, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out.assign(B * N * D, 0.0);
        moe_combine_forward(z.data(), y.data(), w.data(), position_of_slot.data(), B, k, N, D, out.data());
      },
      [&](const std::vector<double>& dout) {
        moe_combine_backward(dout.data(), y.data(), w.data(), position_of_slot.data(), B, k, N, D, dy.data(),
                             dw.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
  // out = z + ...: the residual passes through with gradient 1 (the caller's).
  std::vector<double> out(B * N * D), zero_y(y.size(), 0.0);
  moe_combine_forward(z.data(), zero_y.data(), w.data(), position_of_slot.data(), B, k, N, D, out.data());
  EXPECT_EQ(out, z);
}

TEST(OpGradients, SuperclassLoss) {
  const int64_t B = 4, E = 3;
  const std::vector<int32_t> superclass = {2, 0, 1, 2};
  TestRandom random(231);
  std::vector<double> probs = random.nonzero_vector(B * E), dprobs;
  for (double& p : probs) p = std::abs(p) + 0.1;
  const double weight = 0.3;
  OpGradientCheck check(232);
  check.add_input("super-class loss probs (adds)", &probs, &dprobs, GradWrite::accumulate);
  auto reports = check.run(
      [&](std::vector<double>& out) {
        out = {weight * superclass_loss_forward(probs.data(), superclass.data(), B, E)};
      },
      [&](const std::vector<double>& dout) {
        // The check's L = w_check * out: the op's weight times the check's.
        superclass_loss_backward(probs.data(), superclass.data(), B, E, weight * dout[0], dprobs.data());
      });
  EXPECT_TRUE(all_within_tolerance(reports, kTolerance));
}

}  // namespace
}  // namespace mone
