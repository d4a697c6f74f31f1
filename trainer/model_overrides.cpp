#include "trainer/model_overrides.h"

#include <exception>

#include "trainer/exit_codes.h"

namespace mone {

ModelConfig override_preset(const std::string& preset, const std::vector<FieldOverride>& overrides,
                            const std::string& invalid, Arch arch) {
  ModelConfig config;
  try {
    config = preset_config(preset);
  } catch (const std::exception& error) {
    throw UsageError(std::string("--preset: ") + error.what());
  }
  config.arch = arch;
  for (const FieldOverride& change : overrides) {
    try {
      config.set(change.field, change.value);
    } catch (const std::exception& error) {
      throw UsageError(change.option + ": " + error.what());
    }
  }
  try {
    config.validate();
  } catch (const std::exception& error) {
    throw UsageError(invalid + ": " + error.what());
  }
  return config;
}

}  // namespace mone
