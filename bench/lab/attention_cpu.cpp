// Kernel lab: CPU attention (bench/lab/README.md). Each numbered variant
// computes attention forward (out, softmax) and backward (dqkv) for the
// model's shapes; every variant is checked against variant 1, the model's
// reference (model/ops_attention.cpp), and timed. Only a winner moves into
// model/, where the finite-difference and PyTorch checks then hold it.
//
//   mone-lab-attention-cpu --preset tiny --batch 128 [--variant 2] [--repeats 20]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "bench/options.h"
#include "bench/timing.h"
#include "model/config.h"
#include "model/ops.h"
#include "model/random.h"

namespace {

using mone::HeadView;
using mone::TokenLayout;

struct Problem {
  TokenLayout layout;
  int64_t heads = 0, D = 0;
  std::vector<float> qkv, dout;
};

// Variant 1: the model's reference, one OpenBLAS call per product and (image, head).
void reference_forward(const Problem& p, float* out, float* probs) {
  mone::attention_forward(p.qkv.data(), p.layout, p.heads, p.D, out, probs);
}
void reference_backward(const Problem& p, const float* probs, float* dqkv) {
  mone::attention_backward(p.dout.data(), p.qkv.data(), probs, p.layout, p.heads, p.D, dqkv);
}

// Variant 2: per (image, head), Q, V and K^T copied into contiguous tiles so
// that the inner loops run over unit-stride rows the compiler vectorises;
// scores, softmax and products stay in the tiles (cache resident at N 49).
struct Tiles {
  std::vector<float> q, kt, v, go, ds;
  void size(int64_t n, int64_t hd) {
    q.resize(n * hd);
    kt.resize(hd * n);
    v.resize(n * hd);
    go.resize(n * hd);
    ds.resize(n * n);
  }
};

void load_tiles(const Problem& p, const HeadView& view, int64_t b, int64_t h, Tiles& t) {
  const int64_t N = view.tokens, hd = view.head_dim, width = 3 * p.D;
  for (int64_t i = 0; i < N; ++i) {
    const float* row = p.qkv.data() + view.offset(b, i, h, width);
    for (int64_t d = 0; d < hd; ++d) {
      t.q[i * hd + d] = row[d];
      t.kt[d * N + i] = row[p.D + d];
      t.v[i * hd + d] = row[2 * p.D + d];
    }
  }
}

// body(view, task, image, head, tiles) for every (image, head) with its tiles loaded, in parallel.
template <class Body>
void for_each_head(const Problem& p, Body body) {
  const HeadView view = HeadView::of(p.layout, p.heads, p.D);
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < view.images * p.heads; ++task) {
    thread_local Tiles t;
    t.size(view.tokens, view.head_dim);
    const int64_t b = task / p.heads, h = task % p.heads;
    load_tiles(p, view, b, h, t);
    body(view, task, b, h, t);
  }
}

void tiled_forward(const Problem& p, float* out, float* probs) {
  for_each_head(p, [&](const HeadView& view, int64_t task, int64_t b, int64_t h, Tiles& t) {
    const int64_t N = view.tokens, hd = view.head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    float* s = probs + task * N * N;
    for (int64_t i = 0; i < N; ++i) {
      float* row = s + i * N;
      std::fill(row, row + N, 0.0f);
      for (int64_t d = 0; d < hd; ++d) {
        const float qd = scale * t.q[i * hd + d];
        const float* k = t.kt.data() + d * N;
        for (int64_t j = 0; j < N; ++j) row[j] += qd * k[j];
      }
      const float top = *std::max_element(row, row + N);
      float sum = 0;
      for (int64_t j = 0; j < N; ++j) sum += row[j] = std::exp(row[j] - top);
      const float inverse = 1.0f / sum;
      for (int64_t j = 0; j < N; ++j) row[j] *= inverse;
      float* o = out + view.offset(b, i, h, p.D);
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < N; ++j) {
        const float pj = row[j];
        const float* vj = t.v.data() + j * hd;
        for (int64_t d = 0; d < hd; ++d) o[d] += pj * vj[d];
      }
    }
  });
}

void tiled_backward(const Problem& p, const float* probs, float* dqkv) {
  for_each_head(p, [&](const HeadView& view, int64_t task, int64_t b, int64_t h, Tiles& t) {
    const int64_t N = view.tokens, hd = view.head_dim, width = 3 * p.D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int64_t i = 0; i < N; ++i)
      std::copy_n(p.dout.data() + view.offset(b, i, h, p.D), hd, t.go.data() + i * hd);
    const float* pr = probs + task * N * N;
    // dS = P (dP - <P, dP>) with dP = dO V^T, row by row.
    for (int64_t i = 0; i < N; ++i) {
      float* ds = t.ds.data() + i * N;
      const float* go = t.go.data() + i * hd;
      float dot = 0;
      for (int64_t j = 0; j < N; ++j) {
        const float* vj = t.v.data() + j * hd;
        float dp = 0;
        for (int64_t d = 0; d < hd; ++d) dp += go[d] * vj[d];
        ds[j] = dp;
        dot += pr[i * N + j] * dp;
      }
      for (int64_t j = 0; j < N; ++j) ds[j] = pr[i * N + j] * (ds[j] - dot);
    }
    for (int64_t i = 0; i < N; ++i) {
      float* dq = dqkv + view.offset(b, i, h, width);
      float* dk = dq + p.D;
      float* dv = dq + 2 * p.D;
      std::fill(dq, dq + hd, 0.0f);
      std::fill(dk, dk + hd, 0.0f);
      std::fill(dv, dv + hd, 0.0f);
      for (int64_t j = 0; j < N; ++j) {
        const float s_ij = scale * t.ds[i * N + j], s_ji = scale * t.ds[j * N + i], p_ji = pr[j * N + i];
        const float* kj = t.kt.data();  // K^T: column j
        const float* qj = t.q.data() + j * hd;
        const float* goj = t.go.data() + j * hd;
        for (int64_t d = 0; d < hd; ++d) {
          dq[d] += s_ij * kj[d * N + j];
          dk[d] += s_ji * qj[d];
          dv[d] += p_ji * goj[d];
        }
      }
    }
  });
}

struct Variant {
  const char* name;
  std::function<void(const Problem&, float*, float*)> forward;
  std::function<void(const Problem&, const float*, float*)> backward;
};

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string preset = "tiny";
  int64_t batch = 128;
  int repeats = 20, only = 0;
  double tolerance = 1e-4;
  po::options_description options("mone-lab-attention-cpu: CPU attention variants against the reference");
  options.add_options()("help", "this text")("preset", po::value(&preset)->default_value(preset), "model preset")(
      "batch", po::value(&batch)->default_value(batch), "images")(
      "repeats", po::value(&repeats)->default_value(repeats), "timed runs per variant (the median is shown)")(
      "variant", po::value(&only)->default_value(only), "run only this variant (0: all)")(
      "tolerance", po::value(&tolerance)->default_value(tolerance),
      "largest absolute difference from the reference a variant may have (fp32)");
  try {
    if (!mone::parse_options(argc, argv, options)) return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "mone-lab-attention-cpu: %s\n", error.what());
    return 2;
  }
  const mone::ModelConfig c = mone::preset_config(preset);
  Problem p;
  p.layout = TokenLayout::token_major(batch, c.tokens());  // the expert-sorted layout training uses
  p.heads = c.heads;
  p.D = c.dim;
  const int64_t M = batch * c.tokens(), N = c.tokens(), hd = c.dim / c.heads;
  p.qkv.resize(M * 3 * c.dim);
  p.dout.resize(M * c.dim);
  for (size_t i = 0; i < p.qkv.size(); ++i) p.qkv[i] = static_cast<float>(mone::random_normal(1, 0, i));
  for (size_t i = 0; i < p.dout.size(); ++i) p.dout[i] = static_cast<float>(mone::random_normal(1, 1, i));

  const std::vector<Variant> variants = {
      {"1 reference (OpenBLAS per image and head)", reference_forward, reference_backward},
      {"2 contiguous tiles, vectorised loops", tiled_forward, tiled_backward},
  };
  std::vector<float> ref_out(M * c.dim), ref_probs(batch * c.heads * N * N), ref_dqkv(M * 3 * c.dim);
  reference_forward(p, ref_out.data(), ref_probs.data());
  reference_backward(p, ref_probs.data(), ref_dqkv.data());
  // Multiply-adds of QK^T and PV (forward), of dP, dV, dQ and dK (backward); 2 FLOP each.
  const double forward_flop = 2.0 * 2 * batch * c.heads * N * N * hd, backward_flop = 2.0 * forward_flop;
  std::printf("attention, preset %s, batch %lld, N %lld, %lld heads of %lld, %d repeats (median)\n", preset.c_str(),
              static_cast<long long>(batch), static_cast<long long>(N), static_cast<long long>(c.heads),
              static_cast<long long>(hd), repeats);
  std::printf("%-44s %10s %10s %9s %9s %10s %10s %8s\n", "variant", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s",
              "out err", "dqkv err", "speed-up");
  double reference_ms = 0;
  int failures = 0;
  for (size_t v = 0; v < variants.size(); ++v) {
    if (only != 0 && static_cast<size_t>(only) != v + 1 && v != 0) continue;
    std::vector<float> out(ref_out.size()), probs(ref_probs.size()), dqkv(ref_dqkv.size());
    const Variant& variant = variants[v];
    const double fwd = mone::median_ms([&] { variant.forward(p, out.data(), probs.data()); }, repeats);
    const double bwd = mone::median_ms([&] { variant.backward(p, probs.data(), dqkv.data()); }, repeats);
    if (v == 0) reference_ms = fwd + bwd;
    const double out_error = max_abs_difference(out, ref_out), dqkv_error = max_abs_difference(dqkv, ref_dqkv);
    const bool valid = out_error <= tolerance && dqkv_error <= tolerance;
    failures += valid ? 0 : 1;
    std::printf("%-44s %10.3f %10.3f %9.1f %9.1f %10.2e %10.2e %7.2fx%s\n", variant.name, fwd, bwd,
                forward_flop / fwd / 1e6, backward_flop / bwd / 1e6, out_error, dqkv_error,
                reference_ms / (fwd + bwd), valid ? "" : "  WRONG (above --tolerance)");
  }
  return failures == 0 ? 0 : 1;
}
