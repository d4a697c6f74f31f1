// Attention through cuDNN's fused scaled-dot-product attention: the
// SDPA_FWD and SDPA_BWD operations of cuDNN's backend graph API, bf16 only
// (cuDNN's fused attention has no fp32 mode; the fp32 test mode always runs
// our kernel, ops_attention.cu).
//
// Same contract as attention_forward / attention_backward in ops.h: qkv rows
// in the model's token layout (cuDNN takes the layout's strides as they are,
// no copy), out [rows, D], and lse [B, H, N], the natural log-sum-exp of each
// row of scaled scores, which is exactly what cuDNN calls the softmax stats.
// So the two implementations mix freely: a cuDNN forward feeds our backward
// and the other way round.
//
// Per shape (B, N, heads, D, layout) the plan is built once: cuDNN's
// heuristics rank its engines and the first one that finalises and does not
// carry the NONDETERMINISTIC numerical note is kept (the trainer promises
// bitwise-repeatable steps). When none qualifies, or the build's cuDNN lacks
// the operation, forward()/backward() return false and the caller runs our
// kernel; report() says which engine serves each shape, or why none does.
// They also return false, without a report line, when an operand is not
// 16-byte aligned (k and v start D channels into a qkv row: D % 8 != 0).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/cuda/context.h"
#include "model/ops.h"

namespace mone::cuda {

class CudnnAttention {
 public:
  // Creates a cuDNN handle on the context's stream.
  explicit CudnnAttention(const DeviceContext& context);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // The first call per shape builds the plan and may allocate workspace, so
  // it must not be inside a CUDA graph capture (DeviceModel's first step
  // runs uncaptured; a capture that meets a missing plan throws).
  bool forward(const __nv_bfloat16* qkv, const TokenLayout& layout, int64_t heads, int64_t D, __nv_bfloat16* out,
               float* lse);
  // dqkv assigned (all 3D channels of every row).
  bool backward(const __nv_bfloat16* dout, const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                const TokenLayout& layout, int64_t heads, int64_t D, __nv_bfloat16* dqkv);

  // One line per shape and direction tried: the engine used, or why cuDNN
  // was not used.
  const std::vector<std::string>& report() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace mone::cuda
