// Multi-head self-attention at full width, bidirectional, over the N tokens
// of each image wherever the layout puts them.
//
// The reference takes one (image, head) pair per task of a parallel loop,
// reads its Q, K, V in place through the GEMM leading dimension (token_stride
// rows apart) and makes one OpenBLAS call per product (inside the parallel
// loop OpenBLAS's OpenMP build runs single-threaded). With N = 49 and head
// dim 16 (tiny) those calls are too small to amortise their packing.
//
// The fused kernels take a block of images per task, copy their rows once
// into an image-major tile, and compute each head's scores, softmax and
// products on blocks of rows held in fixed-size vector accumulators, the keys
// (values in the backward) transposed and padded to whole vectors. The
// backward keeps all of a head's dS, then computes dK and dV by blocks of key
// rows (columns of P and dS weighting the rows of Q and dO), each element
// summed over the queries in order. They serve head dims 8 and 16, where they
// beat the reference (tiny, batch 128, one block, one thread, the reference's
// time in brackets: forward 3.1 (4.7) ms, backward 4.4 (5.4) ms on an AMD EPYC
// VM before the key rows; 4.5-4.9 (6.7-7.5) and 6.6-7.0 (7.2-7.9) ms in
// alternated calls on an Intel Xeon VM after them); at head dims 32 and 64
// (s16, 196 tokens) OpenBLAS's kernels win, so those take the reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <omp.h>

#include "model/fast_math.h"
#include "model/lane_reduce.h"
#include "model/ops.h"
#include "model/vector_lanes.h"

namespace mone {

namespace {
// Row-wise softmax of n x n scores in place.
template <class T>
void softmax_rows(T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T* row = s + i * n;
    const T top = lane_max(row, n);
    for_each_lanes_in<T>(0, n, [row, top](int64_t j, auto lanes) {
      using V = decltype(lanes);
      store(row + j, fast_exp(load<V>(row + j) - top));
    });
    const T inverse = T(1) / lane_sum(row, n);
    for (int64_t j = 0; j < n; ++j) row[j] *= inverse;
  }
}
}  // namespace

template <class T>
void attention_reference_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out,
                                 T* probs) {
  const HeadView view = HeadView::of(layout, heads, D);
  const int64_t N = view.tokens, hd = view.head_dim;
  const int64_t ld_qkv = view.token_pitch(3 * D), ld_out = view.token_pitch(D);
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < view.images * heads; ++task) {
    const int64_t b = task / heads, h = task % heads;
    const T* q = qkv + view.offset(b, 0, h, 3 * D);
    const T* k = q + D;
    const T* v = q + 2 * D;
    T* p = probs + task * N * N;
    gemm<T>(false, true, N, N, hd, scale, q, ld_qkv, k, ld_qkv, T(0), p, N);
    softmax_rows(p, N);
    gemm<T>(false, false, N, hd, N, T(1), p, N, v, ld_qkv, T(0), out + view.offset(b, 0, h, D), ld_out);
  }
}

template <class T>
void attention_reference_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout,
                                  int64_t heads, int64_t D, T* dqkv) {
  const HeadView view = HeadView::of(layout, heads, D);
  const int64_t N = view.tokens, hd = view.head_dim;
  const int64_t ld_qkv = view.token_pitch(3 * D), ld_out = view.token_pitch(D);
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < view.images * heads; ++task) {
    const int64_t b = task / heads, h = task % heads;
    thread_local std::vector<T> score_grad;  // per worker thread, kept between calls
    if (score_grad.size() < static_cast<size_t>(N * N)) score_grad.resize(N * N);
    T* ds = score_grad.data();
    const int64_t offset = view.offset(b, 0, h, 3 * D);
    const T *q = qkv + offset, *k = q + D, *v = q + 2 * D;
    T *dq = dqkv + offset, *dk = dq + D, *dv = dq + 2 * D;
    const T* go = dout + view.offset(b, 0, h, D);
    const T* p = probs + task * N * N;
    gemm<T>(false, true, N, N, hd, T(1), go, ld_out, v, ld_qkv, T(0), ds, N);  // dP = dO V^T
    gemm<T>(true, false, N, hd, N, T(1), p, N, go, ld_out, T(0), dv, ld_qkv);   // dV = P^T dO
    for (int64_t i = 0; i < N; ++i) {  // softmax backward: dS = P (dP - <P, dP>)
      const T* pr = p + i * N;
      T* row = ds + i * N;
      const T dot = lane_dot(pr, row, N);
      for (int64_t j = 0; j < N; ++j) row[j] = pr[j] * (row[j] - dot);
    }
    gemm<T>(false, false, N, hd, N, scale, ds, N, k, ld_qkv, T(0), dq, ld_qkv);  // dQ = s dS K
    gemm<T>(true, false, N, hd, N, scale, ds, N, q, ld_qkv, T(0), dk, ld_qkv);   // dK = s dS^T Q
  }
}

namespace {
constexpr int64_t kRowBlock = 4;  // query rows sharing each load of a key or value
constexpr int64_t kKeyBlock = kVectorRegisters >= 32 ? 8 : 4;  // key rows sharing each load of dO or Q

// Lanes of one vector register, and of the vectors a head-dim-wide row is cut
// into.
template <class T>
constexpr int64_t kWide = kRegisterLanes<T>;
template <class T, int64_t HD>
constexpr int64_t kRowLanes = HD < kWide<T> ? HD : kWide<T>;

// Score rows are padded to whole 64-byte vectors of floats (and so to whole
// registers of any width here).
int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }

// Sum and maximum of a padded row, lane-wise, the lanes then combined by
// halving (a fixed order, and a short dependency chain: a softmax row waits on
// both).
template <class T>
T padded_sum(const T* row, int64_t Np) {
  using V = typename Lanes<T, kWide<T>>::type;
  V acc = load<V>(row);
  for (int64_t j = kWide<T>; j < Np; j += kWide<T>) acc += load<V>(row + j);
  return halving_sum<T, kWide<T>>(acc);
}
template <class T>
T padded_max(const T* row, int64_t Np) {
  using V = typename Lanes<T, kWide<T>>::type;
  V acc = load<V>(row);
  for (int64_t j = kWide<T>; j < Np; j += kWide<T>) {
    const V v = load<V>(row + j);
    acc = acc > v ? acc : v;
  }
  return halving_max<T, kWide<T>>(acc);
}

// 0, 1, ..., 15: the lane numbers of any register here (at most 16 lanes).
template <class T>
constexpr T kLaneNumbers[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// out[r][j] = scale * <a_r, column j of bt> for R rows of a (pitch lda) and
// columns [j0, j0 + CB L) of bt [HD, Np]; columns N.. Np of out get `pad`.
// R x CB accumulators, independent FMA chains across the whole sum over d
// (with one block of columns at a time the chains of R rows waited on the
// FMA's latency); the padding is blended in by comparing lane numbers with
// the columns left: setting acc[r][l] lane by lane, with l a variable, sent
// the accumulators through the stack.
template <class T, int64_t HD, int64_t R, int64_t CB>
void rows_times_column_block(const T* a, int64_t lda, const T* bt, int64_t N, int64_t j0, T scale, T pad, T* out) {
  constexpr int64_t L = kWide<T>;
  using V = typename Lanes<T, L>::type;
  const int64_t Np = padded(N);
  V acc[R][CB] = {};
  for (int64_t d = 0; d < HD; ++d) {
    V column[CB];
    for (int64_t c = 0; c < CB; ++c) column[c] = load<V>(bt + d * Np + j0 + c * L);
    for (int64_t r = 0; r < R; ++r) {
      const T ar = a[r * lda + d];
      for (int64_t c = 0; c < CB; ++c) acc[r][c] += ar * column[c];
    }
  }
  for (int64_t c = 0; c < CB; ++c) {
    const int64_t j = j0 + c * L;
    for (int64_t r = 0; r < R; ++r) acc[r][c] *= scale;
    if (j + L > N) {
      static_assert(L <= 16);
      const V lanes = load<V>(kLaneNumbers<T>), padding = V{} + pad, columns_left = V{} + static_cast<T>(N - j);
      for (int64_t r = 0; r < R; ++r) acc[r][c] = lanes < columns_left ? acc[r][c] : padding;
    }
    for (int64_t r = 0; r < R; ++r) store(out + r * Np + j, acc[r][c]);
  }
}

// Column vectors per block: R x CB accumulators and CB columns within the
// registers (4 x 4 + 4 of AVX-512's 32, 4 x 2 + 2 of AVX2's 16).
constexpr int64_t kColumnVectors = kVectorRegisters >= 32 ? 4 : 2;

// All Np columns of out, by blocks of kColumnVectors vectors, then single ones.
template <class T, int64_t HD, int64_t R>
void rows_times_columns(const T* a, int64_t lda, const T* bt, int64_t N, T scale, T pad, T* out) {
  constexpr int64_t L = kWide<T>, CB = kColumnVectors;
  const int64_t Np = padded(N);
  int64_t j0 = 0;
  for (; j0 + CB * L <= Np; j0 += CB * L) rows_times_column_block<T, HD, R, CB>(a, lda, bt, N, j0, scale, pad, out);
  for (; j0 < Np; j0 += L) rows_times_column_block<T, HD, R, 1>(a, lda, bt, N, j0, scale, pad, out);
}

// out[r][:] = sum_j w(r, j) b[j][:] over j < N in order, for R rows of w
// (w(r, j) = w[r * ldw + j * w_step]: rows of P or dS, or their columns) and
// b [N, HD] (pitch ldb): R x HD/L vector accumulators.
template <class T, int64_t HD, int64_t R>
void weighted_rows(const T* w, int64_t ldw, int64_t w_step, const T* b, int64_t ldb, int64_t N, T* out, int64_t ldo) {
  constexpr int64_t L = kRowLanes<T, HD>, C = HD / L;
  using V = typename Lanes<T, L>::type;
  V acc[R][C] = {};
  for (int64_t j = 0; j < N; ++j)
    for (int64_t c = 0; c < C; ++c) {
      const V row = load<V>(b + j * ldb + c * L);
      for (int64_t r = 0; r < R; ++r) acc[r][c] += w[r * ldw + j * w_step] * row;
    }
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) store(out + r * ldo + c * L, acc[r][c]);
}

// rows [N, HD] of a tile (pitch elements apart) -> [HD, Np], columns N.. Np zero.
template <class T, int64_t HD>
void transpose_rows(const T* src, int64_t pitch, int64_t N, T* dst) {
  const int64_t Np = padded(N);
  for (int64_t d = 0; d < HD; ++d) std::fill(dst + d * Np + N, dst + (d + 1) * Np, T(0));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < HD; ++d) dst[d * Np + n] = src[n * pitch + d];
}

// One (image, head): its operands read in place from the task's image tile
// (rows `pitch` apart), keys (forward) or values (backward) transposed.
template <class T>
struct Head {
  const T *q, *k, *v, *g;  // queries, keys, values, output gradient ([N, HD] each, rows pitch / g_pitch apart)
  int64_t pitch, g_pitch, N;
  T scale;
};

// Per worker thread, kept between calls: the transposed operand [HD, Np] and
// padded score rows [N, Np] (the forward uses a block's, the backward keeps
// all of dS for dK).
template <class T>
struct HeadScratch {
  std::vector<T> transposed, scores;
  void size_for(int64_t N, int64_t hd) {
    const auto np = static_cast<size_t>(padded(N));
    if (transposed.size() < np * hd) transposed.resize(np * hd);
    if (scores.size() < np * N) scores.resize(np * N);
  }
};

// Query rows [i0, i0 + R): scores, softmax into p (rows N apart), output rows.
template <class T, int64_t HD, int64_t R>
void forward_rows(const Head<T>& h, HeadScratch<T>& t, int64_t i0, T* p, T* out, int64_t ld_out) {
  const int64_t N = h.N, Np = padded(N);
  T* s = t.scores.data();
  // Padding: never the maximum, and exp of it at most 1e-38.
  rows_times_columns<T, HD, R>(h.q + i0 * h.pitch, h.pitch, t.transposed.data(), N, h.scale,
                               std::numeric_limits<T>::lowest(), s);
  // Each phase over all R rows before the next: the rows' reductions overlap.
  T top[R], inverse[R];
  for (int64_t r = 0; r < R; ++r) top[r] = padded_max(s + r * Np, Np);
  for (int64_t r = 0; r < R; ++r)
    for_each_lanes_in<T>(r * Np, (r + 1) * Np, [s, t = top[r]](int64_t j, auto lanes) {
      using V = decltype(lanes);
      store(s + j, fast_exp(load<V>(s + j) - t));
    });
  for (int64_t r = 0; r < R; ++r) inverse[r] = T(1) / padded_sum(s + r * Np, Np);
  for (int64_t r = 0; r < R; ++r) {
    T* pr = p + (i0 + r) * N;
    for_each_lanes_in<T>(0, N, [pr, sr = s + r * Np, inverse = inverse[r]](int64_t j, auto lanes) {
      using V = decltype(lanes);
      store(pr + j, load<V>(sr + j) * inverse);
    });
  }
  weighted_rows<T, HD, R>(p + i0 * N, N, 1, h.v, h.pitch, N, out + i0 * ld_out, ld_out);
}

// Query rows [i0, i0 + R): dP = dO V^T, dS = s P (dP - <P, dP>) kept in the
// scratch's rows i0.., and the dQ rows.
template <class T, int64_t HD, int64_t R>
void backward_rows(const Head<T>& h, HeadScratch<T>& t, const T* p, int64_t i0, T* dq, int64_t ld_dq) {
  const int64_t N = h.N, Np = padded(N);
  T* ds = t.scores.data() + i0 * Np;
  const T* pb = p + i0 * N;
  rows_times_columns<T, HD, R>(h.g + i0 * h.g_pitch, h.g_pitch, t.transposed.data(), N, T(1), T(0), ds);
  // P dP in place (padding stays 0), <P_r, dP_r>, then dS = s (P dP - P <P, dP>).
  T dot[R];
  for (int64_t r = 0; r < R; ++r)
    for_each_lanes_in<T>(0, N, [d = ds + r * Np, q = pb + r * N](int64_t j, auto lanes) {
      using V = decltype(lanes);
      store(d + j, load<V>(d + j) * load<V>(q + j));
    });
  for (int64_t r = 0; r < R; ++r) dot[r] = padded_sum(ds + r * Np, Np);
  for (int64_t r = 0; r < R; ++r)
    for_each_lanes_in<T>(0, N, [d = ds + r * Np, q = pb + r * N, dot = dot[r], scale = h.scale](int64_t j, auto lanes) {
      using V = decltype(lanes);
      store(d + j, scale * (load<V>(d + j) - load<V>(q + j) * dot));
    });
  weighted_rows<T, HD, R>(ds, Np, 1, h.k, h.pitch, N, dq + i0 * ld_dq, ld_dq);
}

// Key rows [j0, j0 + R) once dS is complete: dV = P^T dO and dK = dS^T Q,
// columns of P and dS weighting the rows of dO and Q, summed over the queries
// in order, into rows of dqkv (pitch ld, dK at dk, dV at dv).
template <class T, int64_t HD, int64_t R>
void key_rows(const Head<T>& h, const HeadScratch<T>& t, const T* p, int64_t j0, T* dk, T* dv, int64_t ld) {
  const int64_t N = h.N, Np = padded(N);
  weighted_rows<T, HD, R>(p + j0, 1, N, h.g, h.g_pitch, N, dv + j0 * ld, ld);
  weighted_rows<T, HD, R>(t.scores.data() + j0, 1, Np, h.q, h.pitch, N, dk + j0 * ld, ld);
}

// Images per task. In the expert-sorted layout a token slot's rows of
// consecutive images are adjacent, so a block of images is read in runs of
// block * 3D floats instead of one short run per (image, head): the strided
// reads, not the arithmetic, were most of a per-(image, head) kernel's time.
// The block changes only which thread computes an image, never its result.
int64_t images_per_task(int64_t images) {
  return std::clamp<int64_t>(images / (4 * omp_get_max_threads()), 1, 8);
}

// Rows of images [b0, b0 + count), `width` wide, between the layout and a tile [count, N, width].
template <class T>
void gather_images(const T* src, const TokenLayout& layout, int64_t width, int64_t b0, int64_t count, T* tile) {
  for (int64_t n = 0; n < layout.tokens; ++n)
    for (int64_t g = 0; g < count; ++g) {
      const T* row = src + layout.row(b0 + g, n) * width;
      std::copy(row, row + width, tile + (g * layout.tokens + n) * width);
    }
}
template <class T>
void scatter_images(const T* tile, const TokenLayout& layout, int64_t width, int64_t b0, int64_t count, T* dst) {
  for (int64_t n = 0; n < layout.tokens; ++n)
    for (int64_t g = 0; g < count; ++g) {
      const T* row = tile + (g * layout.tokens + n) * width;
      std::copy(row, row + width, dst + layout.row(b0 + g, n) * width);
    }
}

// A task's images in image-major tiles (per worker thread, kept between calls).
template <class T>
struct ImageTiles {
  std::vector<T> qkv, d_qkv;  // [count, N, 3D]
  std::vector<T> out;         // [count, N, D]: the output (forward) or its gradient (backward)
  void size_for(int64_t count, int64_t N, int64_t D) {
    const auto rows = static_cast<size_t>(count * N * D);
    if (qkv.size() < 3 * rows) qkv.resize(3 * rows), d_qkv.resize(3 * rows);
    if (out.size() < rows) out.resize(rows);
  }
};

// Runs work(images, scratch, b0, count) on each block of images [b0, b0 + count),
// their qkv rows gathered into images.qkv, one block per task of a parallel loop.
template <class T, int64_t HD, class Work>
void over_image_blocks(const T* qkv, const TokenLayout& layout, int64_t D, Work work) {
  const int64_t per_task = images_per_task(layout.images);
  const int64_t tasks = (layout.images + per_task - 1) / per_task;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    thread_local ImageTiles<T> images;
    thread_local HeadScratch<T> scratch;
    const int64_t b0 = task * per_task, count = std::min(per_task, layout.images - b0);
    images.size_for(count, layout.tokens, D);
    scratch.size_for(layout.tokens, HD);
    gather_images(qkv, layout, 3 * D, b0, count, images.qkv.data());
    work(images, scratch, b0, count);
  }
}

template <class T, int64_t HD>
void fused_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out, T* probs) {
  const int64_t N = layout.tokens;
  over_image_blocks<T, HD>(qkv, layout, D, [&](ImageTiles<T>& images, HeadScratch<T>& scratch, int64_t b0,
                                               int64_t count) {
    for (int64_t g = 0; g < count; ++g)
      for (int64_t hh = 0; hh < heads; ++hh) {
        const T* q = images.qkv.data() + g * N * 3 * D + hh * HD;
        const Head<T> h{q, q + D, q + 2 * D, nullptr, 3 * D, 0, N, T(1) / std::sqrt(T(HD))};
        transpose_rows<T, HD>(h.k, h.pitch, N, scratch.transposed.data());
        T* p = probs + ((b0 + g) * heads + hh) * N * N;
        T* o = images.out.data() + g * N * D + hh * HD;
        int64_t i = 0;
        for (; i + kRowBlock <= N; i += kRowBlock) forward_rows<T, HD, kRowBlock>(h, scratch, i, p, o, D);
        for (; i < N; ++i) forward_rows<T, HD, 1>(h, scratch, i, p, o, D);
      }
    scatter_images(images.out.data(), layout, D, b0, count, out);
  });
}

template <class T, int64_t HD>
void fused_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout, int64_t heads,
                    int64_t D, T* dqkv) {
  const int64_t N = layout.tokens;
  over_image_blocks<T, HD>(qkv, layout, D, [&](ImageTiles<T>& images, HeadScratch<T>& scratch, int64_t b0,
                                               int64_t count) {
    gather_images(dout, layout, D, b0, count, images.out.data());
    for (int64_t g = 0; g < count; ++g)
      for (int64_t hh = 0; hh < heads; ++hh) {
        const int64_t offset = g * N * 3 * D + hh * HD;
        const T* q = images.qkv.data() + offset;
        const T* go = images.out.data() + g * N * D + hh * HD;
        const Head<T> h{q, q + D, q + 2 * D, go, 3 * D, D, N, T(1) / std::sqrt(T(HD))};
        transpose_rows<T, HD>(h.v, h.pitch, N, scratch.transposed.data());
        const T* p = probs + ((b0 + g) * heads + hh) * N * N;
        T* dq = images.d_qkv.data() + offset;
        int64_t i = 0;
        for (; i + kRowBlock <= N; i += kRowBlock) backward_rows<T, HD, kRowBlock>(h, scratch, p, i, dq, 3 * D);
        for (; i < N; ++i) backward_rows<T, HD, 1>(h, scratch, p, i, dq, 3 * D);
        int64_t j = 0;
        for (; j + kKeyBlock <= N; j += kKeyBlock)
          key_rows<T, HD, kKeyBlock>(h, scratch, p, j, dq + D, dq + 2 * D, 3 * D);
        for (; j < N; ++j) key_rows<T, HD, 1>(h, scratch, p, j, dq + D, dq + 2 * D, 3 * D);
      }
    scatter_images(images.d_qkv.data(), layout, 3 * D, b0, count, dqkv);
  });
}
}  // namespace

template <class T>
void attention_forward(const T* qkv, const TokenLayout& layout, int64_t heads, int64_t D, T* out, T* probs) {
  switch (D / heads) {
    case 8: return fused_forward<T, 8>(qkv, layout, heads, D, out, probs);
    case 16: return fused_forward<T, 16>(qkv, layout, heads, D, out, probs);
    default: return attention_reference_forward(qkv, layout, heads, D, out, probs);
  }
}

template <class T>
void attention_backward(const T* dout, const T* qkv, const T* probs, const TokenLayout& layout, int64_t heads,
                        int64_t D, T* dqkv) {
  switch (D / heads) {
    case 8: return fused_backward<T, 8>(dout, qkv, probs, layout, heads, D, dqkv);
    case 16: return fused_backward<T, 16>(dout, qkv, probs, layout, heads, D, dqkv);
    default: return attention_reference_backward(dout, qkv, probs, layout, heads, D, dqkv);
  }
}

#define MONE_INSTANTIATE(T)                                                                                        \
  template void attention_forward<T>(const T*, const TokenLayout&, int64_t, int64_t, T*, T*);                      \
  template void attention_backward<T>(const T*, const T*, const T*, const TokenLayout&, int64_t, int64_t, T*);     \
  template void attention_reference_forward<T>(const T*, const TokenLayout&, int64_t, int64_t, T*, T*);            \
  template void attention_reference_backward<T>(const T*, const T*, const T*, const TokenLayout&, int64_t, int64_t, \
                                                T*);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(double)
#undef MONE_INSTANTIATE

}  // namespace mone
