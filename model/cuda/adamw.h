// AdamW and global-norm gradient clipping on the device: the twins of
// model/adamw.h. fp32 master weights and moments; the bf16 compute copy of
// the weights is refreshed in the same pass as the update (fused), so the
// step reads and writes each parameter once.
#pragma once

#include <cstdint>
#include <vector>

#include "model/adamw.h"
#include "model/cuda/context.h"
#include "model/cuda/device_memory.h"
#include "model/parameters.h"

namespace mone::cuda {

class DeviceAdamW {
 public:
  // `params` (CPU or DeviceModel layout) fixes which ranges are decayed
  // (mone::is_decayed); the moments
  // are one device allocation of 2 * numel floats, zeroed.
  DeviceAdamW(const std::vector<ParamInfo>& params, int64_t numel, const AdamWSettings& settings,
              const DeviceContext& context);

  // The update of mone::AdamW::step (same formula, double arithmetic per
  // element) on device buffers; `compute_copy` (T = float or bf16, may be
  // null) receives the updated values rounded to T.
  template <class T>
  void step(float* values, const float* grads, double lr, T* compute_copy, const DeviceContext& context);

  int64_t step_count() const { return step_count_; }
  // The moments, numel floats each on the device, in the layout of `params`.
  // Restoring a saved state (a checkpoint) writes them and sets the step count.
  float* first_moment() const { return moments_.as<float>(); }
  float* second_moment() const { return moments_.as<float>() + numel_; }
  void set_step_count(int64_t step_count) { step_count_ = step_count; }

 private:
  struct Range {
    int64_t begin = 0, end = 0;
    bool decayed = false;
  };
  AdamWSettings settings_;
  std::vector<Range> ranges_;
  int64_t numel_ = 0;
  DeviceBuffer moments_;  // [m | v]
  int64_t step_count_ = 0;
};

// *norm (device) = sqrt(sum g^2), in double: per fixed chunk, then over the
// chunks by a tree of fixed shape. Independent of the launch, bitwise
// reproducible; not the CPU's order of additions (equal to ~1e-15).
void global_grad_norm(const float* grads, int64_t n, double* norm, const DeviceContext& context);
// mone::scale_gradients on the device: grads *= factor in float.
void scale_gradients(float* grads, int64_t n, float factor, const DeviceContext& context);
// Computes *norm, then scales the gradients by max_norm / norm on the device
// when norm > max_norm (max_norm <= 0: no clipping). No host round trip.
void clip_grad_norm(float* grads, int64_t n, double max_norm, double* norm, const DeviceContext& context);

}  // namespace mone::cuda
