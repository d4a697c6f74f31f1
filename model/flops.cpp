#include "model/flops.h"

namespace mone {

double forward_flops_per_image(const ModelConfig& c, const std::vector<int64_t>& k) {
  const double D = static_cast<double>(c.dim);
  const double N = static_cast<double>(c.tokens());
  double token_width_sum = 0;  // sum over tokens of the width of the token's expert
  for (int64_t j = 0; j < static_cast<int64_t>(k.size()); ++j)
    token_width_sum += static_cast<double>(k[j]) * static_cast<double>(c.expert_width(j + 1));
  // qkv (3 D d) + out-projection (D d) + MLP (2 * mlp_ratio * D d): 12 D d for ratio 4.
  const double per_block = (4.0 + 2.0 * static_cast<double>(c.mlp_ratio)) * D * token_width_sum + 2.0 * N * N * D;
  const double router = N * D * static_cast<double>(c.experts);
  const double patch_embed = N * static_cast<double>(c.patch_dim()) * D;
  const double head = D * static_cast<double>(c.classes);
  return static_cast<double>(c.depth) * per_block + router + patch_embed + head;
}

double vmoe_forward_flops_per_image(const ModelConfig& c) {
  const double D = static_cast<double>(c.dim);
  const double N = static_cast<double>(c.tokens());
  const double attention = 4.0 * D * D * N + 2.0 * N * N * D;  // qkv, out-projection, the two products
  const double mlp = 2.0 * static_cast<double>(c.mlp_ratio) * D * D * N;
  const double blocks = static_cast<double>(c.depth) * (attention + mlp) +
                        static_cast<double>(c.moe_blocks * (c.top_k - 1)) * mlp;
  const double router = D * static_cast<double>(c.experts);
  const double patch_embed = N * static_cast<double>(c.patch_dim()) * D;
  const double head = D * static_cast<double>(c.classes);
  return blocks + router + patch_embed + head;
}

}  // namespace mone
