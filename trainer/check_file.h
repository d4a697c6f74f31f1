// The check file (docs/check-file.md): one forward and backward pass of the CPU
// model on a synthetic batch, written to HDF5 with everything an independent
// implementation needs to reproduce and compare it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model.h"

namespace mone {

struct CheckSettings {
  ModelConfig config;
  uint64_t seed = 1;               // parameters, images and labels
  int64_t batch = 8;
  double effective_capacity = 1.0;
  double alpha = 0.0;              // block l gets alpha * (1 + l) / depth (MoNE)
  // V-MoE: class c in super-class c % superclass_groups (0: no super-class
  // loss), the loss weighted by router_loss_weight.
  int64_t superclass_groups = 0;
  double router_loss_weight = 0.3;
  // MoNE, in-place distillation as the trainer's --distill: a teacher pass at
  // e_c = 1 learns from the labels, then the pass at effective_capacity from
  // the teacher's detached logits (distill_weight * tau^2 KL +
  // distill_label_weight * cross-entropy); gradients and losses summed.
  bool distill = false;
  double distill_temperature = 1.0;
  double distill_weight = 1.0;
  double distill_label_weight = 0.0;
};

// Images [B, H, W, C] standard normal and labels uniform over the classes,
// both pure functions of the seed.
struct SyntheticBatch {
  int64_t size = 0;
  std::vector<float> images;
  std::vector<int32_t> labels;
};
SyntheticBatch synthetic_batch(const ModelConfig& config, uint64_t seed, int64_t batch);

// Gives block l the alpha `alpha * (1 + l) / depth`: non-zero alphas let the
// router receive gradient, and different ones per block catch a mixed-up block.
void set_block_alphas(Model<float>& model, double alpha);

// The pass and what it produced.
struct CheckStep {
  CheckSettings settings;
  std::unique_ptr<Model<float>> model;  // parameters, gradients, routing
  SyntheticBatch batch;
  float loss = 0;                     // with distillation: the teacher's plus the student's
  std::vector<float> logits;          // [B, classes]; with distillation the student's
  std::vector<float> teacher_logits;  // [B, classes] of the teacher pass; empty without distillation
  std::vector<float> router_probs;    // MoNE [B, N, E], original token order; V-MoE [B, E]
};
CheckStep run_check_step(const CheckSettings& settings);

void write_check_file(const std::string& path, const CheckStep& step);

}  // namespace mone
