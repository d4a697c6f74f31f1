// mone-check: one forward and backward pass of the CPU model on a synthetic
// batch, written as a check file (docs/check-file.md) for the cross-checks.
#include <boost/program_options.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/error.h"
#include "model/capacity.h"
#include "model/config.h"
#include "trainer/check_file.h"
#include "trainer/model_overrides.h"
#include "trainer/parse_number.h"

namespace po = boost::program_options;

namespace {

// The preset with every `--set field=value` applied in order, validated.
mone::ModelConfig configured_model(const std::string& preset, const std::vector<std::string>& assignments,
                                   mone::Arch arch) {
  std::vector<mone::FieldOverride> overrides;
  for (const std::string& assignment : assignments) {
    const size_t equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw std::invalid_argument("--set: expected field=value, got '" + assignment + "'");
    }
    const std::string field = assignment.substr(0, equals), text = assignment.substr(equals + 1);
    const std::optional<int64_t> value = mone::parse_number<int64_t>(text);
    if (!value) throw std::invalid_argument("--set " + field + ": '" + text + "' is not an integer");
    overrides.push_back({"--set", field, *value});
  }
  return mone::override_preset(preset, overrides, "--preset/--set: invalid model", arch);
}

int run(int argc, char** argv) {
  std::string preset;
  std::string arch;
  std::string out;
  std::string gelu;
  std::string router;
  std::vector<std::string> overrides;
  uint64_t seed = 0;
  mone::CheckSettings settings;

  po::options_description options("mone-check: one training step of the CPU model, written as a check file");
  options.add_options()
      ("help,h", "this help")
      ("arch", po::value(&arch)->default_value("mone"), "mone | vmoe")
      ("preset", po::value(&preset)->default_value("tiny"), "model preset (tiny, s16, b16)")
      ("seed", po::value(&seed)->default_value(1), "seed of the parameters, images and labels")
      ("batch", po::value(&settings.batch)->default_value(8), "images in the batch")
      ("capacity", po::value(&settings.effective_capacity)->default_value(1.0), "effective capacity e_c in (2^(1-E), 1]")
      ("alpha", po::value(&settings.alpha)->default_value(0.0), "block l's alpha is alpha * (1 + l) / depth")
      ("gelu", po::value(&gelu)->default_value("tanh"), "tanh | erf: the MLP's GELU")
      ("router", po::value(&router)->default_value("learned"),
       "learned | random: MoNE's routing (random: each image's tokens in an order drawn from (seed, image))")
      ("superclass-groups", po::value(&settings.superclass_groups)->default_value(0),
       "vmoe: class c in super-class c % G, with the router's super-class loss (0: none)")
      ("router-loss-weight", po::value(&settings.router_loss_weight)->default_value(0.3),
       "vmoe: weight of the super-class loss")
      ("distill", po::bool_switch(&settings.distill),
       "mone: a teacher pass at e_c = 1, then the pass at --capacity learning from it (in-place distillation)")
      ("distill-temperature", po::value(&settings.distill_temperature)->default_value(1.0),
       "distillation temperature tau")
      ("distill-weight", po::value(&settings.distill_weight)->default_value(1.0), "weight of tau^2 KL")
      ("distill-label-weight", po::value(&settings.distill_label_weight)->default_value(0.0),
       "weight of the student's label cross-entropy")
      ("out", po::value(&out)->required(), "the HDF5 file to write")
      ("set", po::value(&overrides)->composing(), "field=value: override one model field (repeatable)");

  po::variables_map arguments;
  try {
    po::store(po::parse_command_line(argc, argv, options), arguments);
    if (arguments.count("help")) {
      std::cout << options << "\n";
      return EXIT_SUCCESS;
    }
    po::notify(arguments);
  } catch (const po::error& error) {
    throw std::invalid_argument(error.what());  // Boost's messages name the option
  }

  settings.seed = seed;
  settings.config = configured_model(preset, overrides, mone::parse_arch(arch));
  try {
    settings.config.gelu = mone::parse_gelu(gelu);
  } catch (const std::exception& error) {
    throw std::invalid_argument(std::string("--gelu: ") + error.what());
  }
  try {
    settings.config.router = mone::parse_router(router);
    settings.config.validate();
  } catch (const std::exception& error) {
    throw std::invalid_argument(std::string("--router: ") + error.what());
  }
  if (settings.batch <= 0) throw std::invalid_argument("--batch: must be positive, got " + std::to_string(settings.batch));
  if (settings.superclass_groups < 0 || settings.superclass_groups > settings.config.experts)
    throw std::invalid_argument("--superclass-groups: must be in [0, experts]");
  if (settings.distill && settings.config.is_vmoe())
    throw std::invalid_argument("--distill: MoNE only (the V-MoE step has one pass)");
  if (settings.distill_temperature <= 0) throw std::invalid_argument("--distill-temperature: must be positive");
  if (settings.distill_weight < 0 || settings.distill_label_weight < 0)
    throw std::invalid_argument("--distill-weight, --distill-label-weight: must be >= 0");
  try {
    mone::capacity_for(settings.effective_capacity, settings.config.experts);
  } catch (const std::exception& error) {
    throw std::invalid_argument(std::string("--capacity: ") + error.what());
  }

  const mone::CheckStep step = mone::run_check_step(settings);
  try {
    mone::write_check_file(out, step);
  } catch (const mone::DataError& error) {
    throw std::runtime_error(std::string("--out: ") + error.what());
  }
  std::cout << "mone-check: wrote " << out << " (loss " << step.loss << ", realised capacity "
            << step.model->routing().plan.realised_capacity << ")\n";
  return EXIT_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "mone-check: error: " << error.what() << "\n";
    return EXIT_FAILURE;
  }
}
