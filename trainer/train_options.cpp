#include "trainer/train_options.h"

#include <filesystem>
#include <tuple>
#include <vector>

#include "trainer/capacity_schedule.h"
#include "trainer/exit_codes.h"
#include "trainer/model_overrides.h"
#include "trainer/superclasses.h"

namespace mone {

namespace {

void require(bool condition, const std::string& option, const std::string& message) {
  if (!condition) throw UsageError("--" + option + ": " + message);
}

void check_device(const std::string& device, const std::string& precision) {
  require(device == "cpu" || device == "cuda", "device", "must be cpu or cuda, got '" + device + "'");
  require(precision == "bf16" || precision == "fp32", "precision", "must be bf16 or fp32, got '" + precision + "'");
}

}  // namespace

ModelConfig resolve_model(TrainOptions& options, int64_t image_height, int64_t image_width, int64_t channels,
                          int64_t classes) {
  Arch arch = Arch::mone;
  try {
    arch = parse_arch(options.arch);
  } catch (const ConfigError& error) {
    throw UsageError(std::string("--arch: ") + error.what());
  }
  const bool vmoe = arch == Arch::vmoe;
  Router router = Router::learned;
  try {
    router = parse_router(options.router);
  } catch (const ConfigError& error) {
    throw UsageError(std::string("--router: ") + error.what());
  }
  require(!vmoe || router == Router::learned, "router", "random is for --arch mone (V-MoE routes whole images)");
  require(options.device == "cpu" || router == Router::learned, "router", "random runs on --device cpu only");
  Gelu gelu = Gelu::tanh;
  try {
    gelu = parse_gelu(options.gelu);
  } catch (const ConfigError& error) {
    throw UsageError(std::string("--gelu: ") + error.what());
  }
  require(options.device == "cpu" || gelu == Gelu::tanh, "gelu", "erf runs on --device cpu only");
  require(vmoe || options.superclasses.empty(), "superclasses", "is for --arch vmoe");
  if (!options.superclasses.empty()) {
    try {
      const Superclasses groups = read_superclasses(options.superclasses, classes);
      options.superclass_of_class = groups.of_class;
      if (options.experts == 0) options.experts = groups.count;
      require(options.experts == groups.count, "experts",
              std::to_string(options.experts) + " experts for the " + std::to_string(groups.count) +
                  " super-classes of --superclasses: the router's super-class loss needs one expert per super-class");
    } catch (const std::runtime_error& error) {
      if (dynamic_cast<const UsageError*>(&error)) throw;
      throw UsageError(std::string("--superclasses: ") + error.what());
    }
  }
  std::vector<FieldOverride> overrides = {{"the dataset", "image_height", image_height},
                                          {"the dataset", "image_width", image_width},
                                          {"the dataset", "channels", channels},
                                          {"the dataset", "classes", classes}};
  // Option name, the bound override, the model field.
  std::vector<std::tuple<const char*, int64_t*, const char*>> options_of_fields = {
      {"dim", &options.dim, "dim"},       {"depth", &options.depth, "depth"},
      {"heads", &options.heads, "heads"}, {"experts", &options.experts, "experts"},
      {"patch", &options.patch, "patch"}, {"mlp-ratio", &options.mlp_ratio, "mlp_ratio"}};
  const std::vector<std::tuple<const char*, int64_t*, const char*>> vmoe_fields = {
      {"moe-blocks", &options.moe_blocks, "moe_blocks"}, {"top-k", &options.top_k, "top_k"}};
  for (const auto& [option, value, field] : vmoe_fields) {
    require(vmoe || *value == 0, option, "is for --arch vmoe");
    options_of_fields.emplace_back(option, value, field);
  }
  for (const auto& [option, value, field] : options_of_fields) {
    require(*value >= 0, option, "must be positive (0: the preset's), got " + std::to_string(*value));
    if (*value > 0) overrides.push_back({std::string("--") + option, field, *value});
  }
  ModelConfig config =
      override_preset(options.preset, overrides,
                      "the model (--arch " + options.arch + ", --preset " + options.preset +
                          " and overrides, with the dataset's " + std::to_string(image_height) + "x" +
                          std::to_string(image_width) + "x" + std::to_string(channels) + " images) is invalid",
                      arch);
  for (const auto& [option, value, field] : options_of_fields) {
    for (const auto& [name, resolved] : config.fields()) {
      if (name == field) *value = resolved;
    }
  }
  config.router = router;
  config.gelu = gelu;
  // V-MoE has no capacity (model/routing_plan.h): say so rather than ignore the option.
  require(!vmoe || options.capacity == "fixed:1", "capacity",
          "--arch vmoe routes whole images and has no effective capacity; pass --capacity fixed:1, got '" +
              options.capacity + "'");
  return config;
}

void check_train_options(const TrainOptions& o) {
  require(!o.data.empty(), "data", "is required");
  require(!o.run_dir.empty(), "run-dir", "is required");
  check_image_transform_options(o.images);
  require(o.steps > 0, "steps", "must be positive");
  require(o.batch > 0, "batch", "must be positive");
  require(o.accumulate > 0, "accumulate", "must be positive");
  require(o.batch % o.accumulate == 0, "accumulate",
          std::to_string(o.accumulate) + " does not divide --batch " + std::to_string(o.batch));
  require(o.chunk_images >= 0, "chunk-images", "must be 0 (the whole micro-step at once) or positive");
  require(o.device == "cpu" || o.chunk_images == 0, "chunk-images", "is for --device cpu only");
  require(o.lr > 0, "lr", "must be positive");
  require(o.min_lr >= 0 && o.min_lr <= o.lr, "min-lr", "must be in [0, --lr]");
  require(o.warmup >= 0, "warmup", "must be >= 0");
  require(o.weight_decay >= 0, "weight-decay", "must be >= 0");
  require(o.clip >= 0, "clip", "must be >= 0 (0: no clipping)");
  require(o.label_smoothing >= 0 && o.label_smoothing < 1, "label-smoothing", "must be in [0, 1)");
  require(o.threads > 0, "threads", "must be positive");
  require(o.progress == "auto" || o.progress == "bar" || o.progress == "lines", "progress",
          "'" + o.progress + "' is not one of auto, bar, lines");
  require(o.full_capacity_steps >= 0, "full-capacity-steps", "must be >= 0");
  require(o.init == "small" || o.init == "fan-in", "init", "'" + o.init + "' is not one of small, fan-in");
  require(o.distill_temperature > 0, "distill-temperature", "must be positive");
  require(o.distill_weight >= 0, "distill-weight", "must be >= 0");
  require(o.distill_label_weight >= 0, "distill-label-weight", "must be >= 0");
  require(o.device == "cpu" || !o.distill, "distill", "runs on --device cpu only (the device step has one pass)");
  require(o.device == "cpu" || o.capacity.rfind("sandwich", 0) != 0, "capacity",
          "sandwich runs on --device cpu only (the device step has one pass)");
  require(o.router_init_std >= 0, "router-init-std", "must be >= 0");
  require(o.router_loss_weight >= 0, "router-loss-weight", "must be >= 0");
  require(o.eval_batch > 0, "eval-batch", "must be positive");
  require(o.eval_every >= 0, "eval-every", "must be >= 0");
  require(o.log_every > 0, "log-every", "must be positive");
  require(o.checkpoint_every >= 0, "checkpoint-every", "must be >= 0");
  require(o.keep > 0, "keep", "must be positive");
  require(!o.resume.empty(), "resume", "must be auto, none or a checkpoint path");
  require(!o.overwrite || o.resume == "none", "overwrite",
          "starts a new run, so it goes with --resume none (got --resume " + o.resume + ")");
  require(o.resume == "auto" || o.resume == "none" || std::filesystem::is_regular_file(o.resume), "resume",
          "'" + o.resume + "' is not a checkpoint file (nor auto or none)");
  // At least one float32; at most 2^31 elements, MPI's int count.
  const auto bucket_size_ok = [](double mb) { return mb * 1048576.0 >= 4.0 && mb <= 8192.0; };
  require(bucket_size_ok(o.bucket_mb), "bucket-mb", "must be in [4 bytes, 8192] MiB");
  require(bucket_size_ok(o.first_bucket_mb), "first-bucket-mb", "must be in [4 bytes, 8192] MiB");
  require(o.allreduce_dtype == "fp32" || o.allreduce_dtype == "bf16", "allreduce-dtype",
          "must be fp32 or bf16, got '" + o.allreduce_dtype + "'");
  require(o.comm_timeout > 0, "comm-timeout", "must be positive (seconds)");
  require(o.check_params_every >= 0, "check-params-every", "must be >= 0 (0: never)");
  check_device(o.device, o.precision);
  require(o.device == "cpu" || o.allreduce_dtype == "fp32", "allreduce-dtype",
          "bf16 is for --device cpu; the device path averages the gradients in fp32");
}

void check_batches_split_over_ranks(const TrainOptions& o) {
  require(o.batch / o.accumulate % o.world == 0, "batch",
          "each micro-batch (" + std::to_string(o.batch / o.accumulate) + ") must split evenly over the " +
              std::to_string(o.world) + " ranks");
  require(o.eval_batch % o.world == 0, "eval-batch",
          std::to_string(o.eval_batch) + " does not split evenly over " + std::to_string(o.world) + " ranks");
}

void check_eval_options(const EvalOptions& o) {
  require(!o.data.empty(), "data", "is required");
  require(!o.checkpoint.empty(), "checkpoint", "is required");
  require(o.batch > 0, "batch", "must be positive");
  require(o.threads > 0, "threads", "must be positive");
  check_device(o.device, o.precision);
}

void check_route_options(const RouteOptions& o) {
  require(!o.data.empty(), "data", "is required");
  require(!o.checkpoint.empty(), "checkpoint", "is required");
  require(!o.out.empty(), "out", "is required");
  require(o.images > 0, "images", "must be positive");
  // Nearest-neighbour pictures past 64x are only bigger, never clearer.
  require(o.scale >= 1 && o.scale <= 64, "scale", "must be in 1..64");
  require(o.threads > 0, "threads", "must be positive");
}

void check_superclass_options(const SuperclassOptions& o) {
  require(!o.data.empty(), "data", "is required");
  require(!o.checkpoint.empty(), "checkpoint", "is required");
  require(o.groups > 0, "groups", "is required and must be positive");
  require(!o.out.empty(), "out", "is required");
  require(o.batch > 0, "batch", "must be positive");
  require(o.threads > 0, "threads", "must be positive");
}

}  // namespace mone
