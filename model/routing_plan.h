// The routing plan of one pass (method page, sections 1 and 2): the e_c a
// step asks for and everything that follows from it before any token is
// seen, computed once and handed to whoever needs it (the model on either
// device, the graph cache, the log, evaluation).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/ops.h"

namespace mone {

struct RoutingPlan {
  double requested_capacity = 1.0;          // e_c asked for
  std::vector<double> capacity;             // c_1..c_E, index 0 = smallest expert
  std::vector<int64_t> tokens_per_expert;   // k_1..k_E per image (the floors of c_j N)
  double realised_capacity = 1.0;           // the e_c that k_1..k_E give
  double forward_flops_per_image = 0;       // flops.h, at k_1..k_E

  // Two plans that route alike: same k_1..k_E (hence same groups, FLOPs and
  // realised e_c). Keys a captured step.
  bool same_routing(const RoutingPlan& other) const { return tokens_per_expert == other.tokens_per_expert; }
};

// Solves the capacity distribution for e_c once. Throws ConfigError for an
// infeasible e_c (capacity.h). V-MoE's plan has only e_c = 1 and its FLOPs
// (no capacities, no tokens per expert); any other e_c throws.
RoutingPlan plan_routing(const ModelConfig& config, double effective_capacity);

// The expert-sorted layout's groups for `batch` images: one per expert,
// largest first, k_j * batch rows at width d_j (ops.h, expert_groups).
std::vector<ExpertGroup> expert_sorted_groups(const ModelConfig& config, const RoutingPlan& plan, int64_t batch);

}  // namespace mone
