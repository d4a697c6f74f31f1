// AdamW (Loshchilov & Hutter) over the contiguous parameter and gradient
// buffers of a ParameterSet, and global-norm gradient clipping. The CPU
// reference: fp32 parameters and moments, every reduction in a fixed order so
// a run gives the same bits at any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "model/parameters.h"

namespace mone {

struct AdamWSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.05;
};

// Weight decay applies to the projection matrices and the router's weight
// only; biases, LayerNorm, the position embedding and alpha are not decayed.
bool is_decayed(ParamKind kind);

class AdamW {
 public:
  // `params` fixes which ranges of the buffers are decayed.
  AdamW(const std::vector<ParamInfo>& params, int64_t numel, const AdamWSettings& settings);

  // One update at learning rate `lr`, the same as torch.optim.AdamW:
  //   t += 1; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
  //   p = p (1 - lr wd [decayed only]) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(float* values, const float* grads, double lr);

  const AdamWSettings& settings() const { return settings_; }
  int64_t step_count() const { return step_count_; }
  const std::vector<float>& first_moment() const { return m_; }
  const std::vector<float>& second_moment() const { return v_; }
  // Restores a saved state (a checkpoint); sizes must match the parameters.
  void restore(int64_t step_count, std::vector<float> first_moment, std::vector<float> second_moment);

 private:
  struct Range {
    int64_t begin = 0;
    int64_t end = 0;
    bool decayed = false;
  };
  AdamWSettings settings_;
  std::vector<Range> ranges_;  // consecutive runs of equal decay, covering the buffers
  std::vector<float> m_;
  std::vector<float> v_;
  int64_t step_count_ = 0;
};

// sqrt(sum g^2) over the whole buffer, accumulated in double over fixed-size
// chunks whose partial sums are added in chunk order: independent of threads.
double global_grad_norm(const float* grads, int64_t n);

// grads *= factor, element by element in float: the 1 / micro-steps scaling
// of accumulated gradients before they are averaged over the ranks.
void scale_gradients(float* grads, int64_t n, float factor);

// Scales the gradients by max_norm / norm when the global norm exceeds
// max_norm (max_norm <= 0: no clipping). Returns the norm before clipping.
double clip_grad_norm(float* grads, int64_t n, double max_norm);

}  // namespace mone
