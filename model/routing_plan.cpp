#include "model/routing_plan.h"

#include "model/capacity.h"
#include "model/flops.h"

namespace mone {

RoutingPlan plan_routing(const ModelConfig& config, double effective_capacity) {
  RoutingPlan plan;
  plan.requested_capacity = effective_capacity;
  if (config.is_vmoe()) {
    // Whole images go to experts: nothing to distribute, every token computed.
    if (effective_capacity != 1.0)
      throw ConfigError("V-MoE routes whole images and has no effective capacity: e_c must be 1, got " +
                        std::to_string(effective_capacity));
    plan.forward_flops_per_image = vmoe_forward_flops_per_image(config);
    return plan;
  }
  plan.capacity = capacity_for(effective_capacity, config.experts);
  plan.tokens_per_expert = tokens_per_expert(plan.capacity, config.tokens());
  plan.realised_capacity = realised_capacity(plan.tokens_per_expert);
  plan.forward_flops_per_image = forward_flops_per_image(config, plan.tokens_per_expert);
  return plan;
}

std::vector<ExpertGroup> expert_sorted_groups(const ModelConfig& config, const RoutingPlan& plan, int64_t batch) {
  std::vector<int64_t> widths(config.experts);
  for (int64_t j = 0; j < config.experts; ++j) widths[j] = config.expert_width(j + 1);
  return expert_groups(plan.tokens_per_expert, widths, batch);
}

}  // namespace mone
