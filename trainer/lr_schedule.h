// The learning rate of each step: linear warmup from lr/warmup to lr over
// `warmup` steps, then cosine decay to min_lr at the last step.
#pragma once

#include <cstdint>

namespace mone {

struct LrSchedule {
  double peak = 1e-3;
  double minimum = 1e-5;
  int64_t warmup = 0;
  int64_t total = 1;

  // The rate of step `step` (0-based): a pure function, so a resumed run
  // continues the same curve.
  double at(int64_t step) const;
};

}  // namespace mone
