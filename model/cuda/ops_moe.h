// Mobile V-MoE's ops on the device: the twins of model/ops_moe.h, same names
// and argument order, the DeviceContext last, with model/cuda/ops.h's
// conventions: activations T (float or bf16), router probabilities, combine
// weights and their gradients fp32, every sum in fp32, no atomics.
//
// The image-sorted layout itself (which slot goes to which position) is
// decided on the host by model/ops_moe.h's image_sorted_dispatch from the
// downloaded expert_of_slot: the expert groups' sizes are data and size the
// GEMMs the host enqueues, so a V-MoE pass waits for the device once, after
// the router.
#pragma once

#include <cstdint>

#include "model/cuda/context.h"

namespace mone::cuda {

// ---- top-k of the per-image router (one thread per image): the CPU's rule
// and tie-break (higher probability first, equal: the lower expert), weights
// renormalised over the image's k in the CPU's order of additions.
void image_top_k_forward(const float* probs, int64_t B, int64_t E, int64_t k, int32_t* expert_of_slot,
                         float* weight_of_slot, const DeviceContext& context);
// dprobs [B, E] assigned: zero except at the chosen experts.
void image_top_k_backward(const float* dweight, const float* probs, const int32_t* expert_of_slot, int64_t B, int64_t E,
                          int64_t k, float* dprobs, const DeviceContext& context);

// ---- dispatch into the image-sorted layout, and its backward (dx assigned:
// the image's slots summed in order s = 0, 1, ... in fp32).
template <class T>
void moe_dispatch_forward(const T* x, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                          T* out, const DeviceContext& context);
template <class T>
void moe_dispatch_backward(const T* dout, const int32_t* position_of_slot, int64_t B, int64_t k, int64_t N, int64_t D,
                           T* dx, const DeviceContext& context);

// ---- combine on the residual (out may alias z), and its backward: dy
// assigned, dweight[slot] += <dout of the image, y of the slot> by a block
// tree sum of fixed shape (bitwise reproducible).
template <class T>
void moe_combine_forward(const T* z, const T* y, const float* weight_of_slot, const int32_t* position_of_slot,
                         int64_t B, int64_t k, int64_t N, int64_t D, T* out, const DeviceContext& context);
template <class T>
void moe_combine_backward(const T* dout, const T* y, const float* weight_of_slot, const int32_t* position_of_slot,
                          int64_t B, int64_t k, int64_t N, int64_t D, T* dy, float* dweight,
                          const DeviceContext& context);

// ---- the super-class loss. superclass_of_images: superclass[b] =
// superclass_of_class[labels[b]]. The forward adds weight * (-(1/B) sum_b
// log probs[b, superclass[b]]) into the device scalar *loss; the backward
// adds weight * d(loss)/d(probs) into dprobs [B, E].
void superclass_of_images(const int32_t* labels, const int32_t* superclass_of_class, int64_t B, int32_t* superclass,
                          const DeviceContext& context);
void superclass_loss_forward(const float* probs, const int32_t* superclass, int64_t B, int64_t E, float weight,
                             float* loss, const DeviceContext& context);
void superclass_loss_backward(const float* probs, const int32_t* superclass, int64_t B, int64_t E, float weight,
                              float* dprobs, const DeviceContext& context);

}  // namespace mone::cuda
