// Small models and batches shared by the model tests. Sizes are chosen so the
// whole suite runs in seconds on two cores while every mechanism is exercised:
// 16 tokens per image, so floor(c_j * N) gives non-empty groups for several
// experts at e_c = 0.5 and 0.2.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace mone::testing {

// 8x8x2 images, patch 2 (N = 16 tokens, patch_dim 8), D 16, depth 2, 2 heads,
// 3 classes, MLP ratio 4. With E = 4 the experts are 2, 4, 8, 16 wide.
ModelConfig small_config(int64_t experts = 4);

template <class T>
struct Batch {
  int64_t size = 0;
  std::vector<T> images;         // [B, H, W, C], |x| in [0.1, 1]
  std::vector<int32_t> labels;   // [B]
};
template <class T>
Batch<T> random_batch(const ModelConfig& config, int64_t batch, uint64_t seed);

// Overwrites every parameter with O(1)-scale non-zero values (weights scaled
// by 1/sqrt(fan-in), gains around 1, biases and every block's alpha non-zero).
// Tests use it instead of the initialisation because zero biases, unit gains
// and alpha = 0 would hide errors in the terms they multiply, and because
// router weights of this size keep the router probabilities well apart.
template <class T>
void randomise_parameters(ParameterSet<T>& params, uint64_t seed);

// Runs the model on one thread while in scope. The test models are so small
// that thread start-up and BLAS/OpenMP spinning dominate: a finite-difference
// sweep of ~1500 forwards takes ~10 s on the default threads and ~0.5 s on one.
class SingleThreaded {
 public:
  SingleThreaded();
  ~SingleThreaded();
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int previous_;
};

// The finite-difference check of every parameter tensor of a whole model:
// all elements of tensors up to 64 elements, 20 elements drawn by a
// TestRandom(sampling_seed) of larger ones, against `analytic` (the
// gradient buffer of forward_backward), each tensor within `tolerance`
// (tests/common/gradcheck.h); `context` names the case in a failure.
void expect_parameter_gradients(ParameterSet<double>& params, const std::vector<double>& analytic,
                                const std::function<double()>& loss, uint64_t sampling_seed, double tolerance,
                                const std::string& context);

// "blocks.<block>.<suffix>"
std::string block_param(int64_t block, const std::string& suffix);

// The embedded tokens [B*N, D] in the original order (patchify, patch
// embedding, position embedding) and the router's probabilities [B*N, E] on
// them, computed here from the primitive ops and the named parameters, so that
// tests can follow the model's routing decision from outside.
template <class T>
std::vector<T> embed_tokens(const ParameterSet<T>& params, const ModelConfig& config, const T* images,
                            int64_t batch);
template <class T>
std::vector<T> router_probabilities(const ParameterSet<T>& params, const ModelConfig& config,
                                    const std::vector<T>& embedded, int64_t batch);

}  // namespace mone::testing
