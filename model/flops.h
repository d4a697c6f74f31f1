// FLOP counter (method page, "FLOPs": one multiply-add = one FLOP).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace mone {

// Forward FLOPs for one image with k_j tokens at expert j (realised routing).
double forward_flops_per_image(const ModelConfig& config, const std::vector<int64_t>& tokens_per_expert);

// Mobile V-MoE's forward FLOPs for one image: the dense ViT's, each MoE block's
// MLP top_k times, and the router on the mean token (method page, section 5).
double vmoe_forward_flops_per_image(const ModelConfig& config);

// A training step is counted as three forward passes (the ViT convention).
inline double training_flops_per_image(const ModelConfig& config,
                                       const std::vector<int64_t>& tokens_per_expert) {
  return 3.0 * forward_flops_per_image(config, tokens_per_expert);
}

}  // namespace mone
