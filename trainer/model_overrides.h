// A model from a preset and field overrides: the one way `mone train`'s
// model options (--dim, --depth, ...) and mone-check's --set make a
// ModelConfig.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace mone {

struct FieldOverride {
  std::string option;  // what the user wrote, for errors: "--set", "the dataset"
  std::string field;   // a ModelConfig field (ModelConfig::fields)
  int64_t value;
};

// preset_config(preset) in `arch`, with each override set in order, then validated.
// Throws UsageError: "--preset: <why>" for an unknown preset, "<option>:
// <why>" for a field the config does not have, "<invalid>: <why>" when the
// result does not validate.
ModelConfig override_preset(const std::string& preset, const std::vector<FieldOverride>& overrides,
                            const std::string& invalid, Arch arch = Arch::mone);

}  // namespace mone
