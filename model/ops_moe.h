// The ops of Mobile V-MoE's per-image routing (method page, section 5), CPU
// reference, with the conventions of model/ops.h (activation gradients
// assign unless they say "adds", parameter gradients accumulate).
//
// An image b takes k experts, its slots b*k + s (s = 0 best); the image-sorted
// layout stores slot positions in expert order, position p holding the N
// tokens of one slot as rows p*N .. p*N + N-1, so each expert's rows are one
// contiguous block (a group of ops.h's ExpertGroup at full width).
#pragma once

#include <cstdint>
#include <vector>

#include "model/ops.h"

namespace mone {

// ---- top-k of the per-image router: probs [B, E] -> expert_of_slot [B*k]
// (highest probability first; equal probabilities: the lower expert) and
// weight_of_slot [B*k] = p / (sum of the image's k chosen p): the weights of
// an image add up to 1.
template <class T>
void image_top_k_forward(const T* probs, int64_t B, int64_t E, int64_t k, int32_t* expert_of_slot,
                         T* weight_of_slot);
// dprobs [B, E] assigned: zero except at the chosen experts, through the renormalisation.
template <class T>
void image_top_k_backward(const T* dweight, const T* probs, const int32_t* expert_of_slot, int64_t B, int64_t E,
                          int64_t k, T* dprobs);

// ---- the image-sorted layout: slots ordered by expert, largest expert index
// first, then by slot (MoNE's expert_sorted_order over the B*k slots of one
// pass). position_of_slot [B*k]; slots_per_expert [E]. The groups are
// expert_groups(slots_per_expert, all widths D, N); expert_of_group names the
// expert of each (experts without a slot have no group).
struct ImageDispatch {
  std::vector<int32_t> position_of_slot;
  std::vector<int64_t> slots_per_expert;
  std::vector<ExpertGroup> groups;
  std::vector<int64_t> expert_of_group;
};
ImageDispatch image_sorted_dispatch(const int32_t* expert_of_slot, int64_t B, int64_t k, int64_t E, int64_t N,
                                    int64_t D);

// ---- dispatch: out[(position_of_slot[b*k+s]) * N + n] = x[b*N + n] for every slot.
template <class T>
void moe_dispatch_forward(const T* x, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                          T* out);
// dx[b*N + n] = sum over the image's slots of dout at their rows (assigned).
template <class T>
void moe_dispatch_backward(const T* dout, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N,
                           int64_t D, T* dx);

// ---- combine on the residual: out[b*N + n] = z[b*N + n] + sum_s w[b*k+s] * y[pos(b,s)*N + n],
// the slots added in order s = 0, 1, ... (out may alias z).
template <class T>
void moe_combine_forward(const T* z, const T* y, const T* weight_of_slot, const int32_t* position_of_slot, int64_t B,
                         int64_t k, int64_t N, int64_t D, T* out);
// dz = dout is the caller's (residual); dy at each slot's rows = w * dout
// (assigned); dweight[b*k+s] += <dout of image b, y of the slot> (adds: every
// MoE block reads the same weights).
template <class T>
void moe_combine_backward(const T* dout, const T* y, const T* weight_of_slot, const int32_t* position_of_slot,
                          int64_t B, int64_t k, int64_t N, int64_t D, T* dy, T* dweight);

// ---- the super-class loss: -(1/B) sum_b log probs[b, superclass[b]].
template <class T>
T superclass_loss_forward(const T* probs, const int32_t* superclass, int64_t B, int64_t E);
// Adds weight * d(loss)/d(probs) into dprobs [B, E].
template <class T>
void superclass_loss_backward(const T* probs, const int32_t* superclass, int64_t B, int64_t E, T weight, T* dprobs);

}  // namespace mone
