#include "trainer/check_file.h"

#include <stdexcept>

#include "model/random.h"
#include "data/hdf5_writer.h"

namespace mone {
namespace {

// Random streams of the synthetic batch ("chkimage", "chklabel" in ASCII), kept
// apart from the streams that initialise the parameters from the same seed.
constexpr uint64_t kImageStream = 0x63686b696d616765ULL;
constexpr uint64_t kLabelStream = 0x63686b6c6162656cULL;

}  // namespace

SyntheticBatch synthetic_batch(const ModelConfig& config, uint64_t seed, int64_t batch) {
  if (batch <= 0) throw std::invalid_argument("batch must be positive, got " + std::to_string(batch));
  SyntheticBatch result;
  result.size = batch;
  result.images.resize(batch * config.image_height * config.image_width * config.channels);
  for (size_t i = 0; i < result.images.size(); ++i) {
    result.images[i] = static_cast<float>(random_normal(seed, kImageStream, i));
  }
  result.labels.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    // The modulo bias is below 2^-50 for any class count a model has.
    result.labels[b] = static_cast<int32_t>(random_bits(seed, kLabelStream, b) % config.classes);
  }
  return result;
}

void set_block_alphas(Model<float>& model, double alpha) {
  const int64_t depth = model.config().depth;
  for (int64_t block = 0; block < depth; ++block) {
    *model.params().value("blocks." + std::to_string(block) + ".alpha") =
        static_cast<float>(alpha * static_cast<double>(1 + block) / static_cast<double>(depth));
  }
}

CheckStep run_check_step(const CheckSettings& settings) {
  settings.config.validate();
  CheckStep step;
  step.settings = settings;
  step.model = std::make_unique<Model<float>>(settings.config, settings.seed);
  if (!settings.config.is_vmoe()) set_block_alphas(*step.model, settings.alpha);
  step.batch = synthetic_batch(settings.config, settings.seed, settings.batch);

  Model<float>& model = *step.model;
  const ModelConfig& config = settings.config;
  if (config.is_vmoe() && settings.superclass_groups > 0) {
    std::vector<int32_t> superclass_of_class;
    for (int64_t c = 0; c < config.classes; ++c)
      superclass_of_class.push_back(static_cast<int32_t>(c % settings.superclass_groups));
    model.set_superclasses(superclass_of_class, settings.router_loss_weight);
  }
  // The random router's draws: key = seed, image b as sample b (a no-op for the learned router).
  std::vector<int64_t> samples(static_cast<size_t>(settings.batch));
  for (int64_t b = 0; b < settings.batch; ++b) samples[static_cast<size_t>(b)] = b;
  model.set_random_routing(settings.seed, samples);
  model.params().zero_grads();
  const float* images = step.batch.images.data();
  const int32_t* labels = step.batch.labels.data();
  DistillationLoss<float> distillation;
  if (settings.distill) {
    if (config.is_vmoe()) throw std::invalid_argument("distillation is MoNE's (the V-MoE step has one pass)");
    step.loss = model.forward_backward(images, labels, settings.batch, plan_routing(config, 1.0));
    step.teacher_logits.assign(model.logits(), model.logits() + settings.batch * config.classes);
    distillation.teacher_logits = step.teacher_logits.data();
    distillation.temperature = static_cast<float>(settings.distill_temperature);
    distillation.kl_weight = static_cast<float>(settings.distill_weight);
    distillation.label_weight = static_cast<float>(settings.distill_label_weight);
  }
  step.loss += model.forward_backward(images, labels, settings.batch, plan_routing(config, settings.effective_capacity),
                                      settings.distill ? &distillation : nullptr);
  step.logits.assign(model.logits(), model.logits() + settings.batch * settings.config.classes);
  const float* probs = model.router_probs();
  const int64_t rows = settings.config.is_vmoe() ? settings.batch : settings.batch * settings.config.tokens();
  step.router_probs.assign(probs, probs + rows * settings.config.experts);
  return step;
}

void write_check_file(const std::string& path, const CheckStep& step) {
  const ModelConfig& config = step.settings.config;
  const Model<float>& model = *step.model;
  const Routing& routing = model.routing();
  const int64_t batch = step.batch.size;
  const bool vmoe = config.is_vmoe();
  if (!vmoe && static_cast<int64_t>(routing.expert_of_token.size()) != batch * config.tokens()) {
    throw std::logic_error("the model's routing covers " + std::to_string(routing.expert_of_token.size()) +
                           " tokens, the batch has " + std::to_string(batch * config.tokens()));
  }

  Hdf5Writer file(path);
  file.write_attribute("format", std::string("mone-check"));
  file.write_attribute("version", int64_t{1});
  file.write_attribute("arch", arch_name(config.arch));
  for (const auto& [name, value] : config.fields()) file.write_attribute(name, value);
  file.write_attribute("gelu", gelu_name(config.gelu));
  if (!vmoe) file.write_attribute("router", router_name(config.router));
  file.write_attribute("seed", static_cast<int64_t>(step.settings.seed));
  file.write_attribute("batch", batch);
  if (vmoe) {
    file.write_attribute("superclass_groups", step.settings.superclass_groups);
    file.write_attribute("router_loss_weight", step.settings.router_loss_weight);
  } else {
    file.write_attribute("requested_capacity", routing.plan.requested_capacity);
    file.write_attribute("realised_capacity", routing.plan.realised_capacity);
  }
  if (!step.teacher_logits.empty()) {
    file.write_attribute("distill_temperature", step.settings.distill_temperature);
    file.write_attribute("distill_weight", step.settings.distill_weight);
    file.write_attribute("distill_label_weight", step.settings.distill_label_weight);
    file.write_dataset("/distill/teacher_logits", {batch, config.classes}, step.teacher_logits.data());
  }

  const ParameterSet<float>& params = model.params();
  for (const ParamInfo& info : params.infos()) {
    file.write_dataset("/params/" + info.name, info.shape, params.values() + info.offset);
    file.write_dataset("/grads/" + info.name, info.shape, params.grads() + info.offset);
  }

  file.write_dataset("/batch/images", {batch, config.image_height, config.image_width, config.channels},
                     step.batch.images.data());
  file.write_dataset("/batch/labels", step.batch.labels);

  if (vmoe) {
    file.write_dataset("/routing/expert_of_slot", {batch, config.top_k}, routing.expert_of_slot.data());
    file.write_dataset("/routing/router_probs", {batch, config.experts}, step.router_probs.data());
  } else {
    file.write_dataset("/routing/capacity", routing.plan.capacity);
    file.write_dataset("/routing/tokens_per_expert", routing.plan.tokens_per_expert);
    file.write_dataset("/routing/expert_of_token", {batch, config.tokens()}, routing.expert_of_token.data());
    file.write_dataset("/routing/router_probs", {batch, config.tokens(), config.experts}, step.router_probs.data());
  }

  file.write_dataset("/output/logits", {batch, config.classes}, step.logits.data());
  file.write_dataset("/output/loss", {1}, &step.loss);
  file.close();
}

}  // namespace mone
