// The effective capacity e_c of each training step (method page, "One model,
// many budgets"): fixed, drawn from a set, or drawn from a range. A draw is a
// pure function of (seed, step), so every data-parallel rank uses the same
// e_c in the same step and a resumed run draws the same values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace mone {

// The counter-based random stream of the capacity draws (random.h); no other
// draw uses it.
constexpr uint64_t kCapacityStream = 0x6361706163697479;  // "capacity"

// {0.15, 0.25, ..., 0.95, 1.0}, less the values infeasible for `experts`
// (e_c must exceed 2^(1-E)).
std::vector<double> default_capacities(int64_t experts);

// "0.15,0.25,1": each value checked feasible for `experts`. Throws
// std::invalid_argument saying which value is wrong and why.
std::vector<double> parse_capacity_list(const std::string& text, int64_t experts);

// The capacities an evaluation runs: `text` as parse_capacity_list, empty:
// default_capacities. V-MoE has only e_c = 1 (routing_plan.h): its default
// is {1} and any other value throws std::invalid_argument.
std::vector<double> evaluation_capacities(const std::string& text, const ModelConfig& config);

class CapacitySchedule {
 public:
  // "fixed:E", "random" (the default set), "random:E1,E2,...", "range:LO-HI"
  // or "sandwich[:K]" (K default 2). Throws std::invalid_argument naming what
  // is wrong. The first `full_capacity_steps` steps run at e_c = 1 (a warm-up
  // of the dense model before the capacities are drawn).
  static CapacitySchedule parse(const std::string& spec, int64_t experts, int64_t full_capacity_steps = 0);

  // The e_c of each pass of training step `step` (0-based) over the step's
  // batch: one pass, except for the sandwich rule: e_c = 1, the smallest of
  // the default set, then K drawn from it (method page, "Sandwich sampling").
  std::vector<double> passes(uint64_t seed, int64_t step) const;

 private:
  enum class Kind { fixed, set, range, sandwich };
  Kind kind_ = Kind::fixed;
  int64_t full_capacity_steps_ = 0;
  std::vector<double> values_;  // fixed: one value; set, sandwich: the choices; range: {low, high}
  int64_t sandwich_draws_ = 0;  // K
};

}  // namespace mone
