#include "tests/common/model_fixtures.h"

#include <cmath>

#include "model/model.h"
#include "model/ops.h"
#include "tests/common/gradcheck.h"
#include "tests/common/test_random.h"

namespace mone::testing {

ModelConfig small_config(int64_t experts) {
  ModelConfig config;
  config.image_height = 8;
  config.image_width = 8;
  config.channels = 2;
  config.patch = 2;
  config.dim = 16;
  config.depth = 2;
  config.heads = 2;
  config.experts = experts;
  config.classes = 3;
  config.mlp_ratio = 4;
  return config;
}

template <class T>
Batch<T> random_batch(const ModelConfig& config, int64_t batch, uint64_t seed) {
  TestRandom random(seed);
  Batch<T> b;
  b.size = batch;
  const int64_t pixels = batch * config.image_height * config.image_width * config.channels;
  b.images = cast_vector<T>(random.nonzero_vector(pixels));
  for (int64_t i = 0; i < batch; ++i) b.labels.push_back(static_cast<int32_t>(random.index(config.classes)));
  return b;
}

template <class T>
void randomise_parameters(ParameterSet<T>& params, uint64_t seed) {
  TestRandom random(seed);
  for (const ParamInfo& info : params.infos()) {
    T* values = params.value(info.name);
    // A stacked V-MoE expert weight [E, in, out] has fan-in `in`.
    const size_t in_axis = info.shape.size() == 3 ? 1 : 0;
    const double fan_in = info.shape.empty() ? 1.0 : static_cast<double>(info.shape[in_axis]);
    for (int64_t i = 0; i < info.numel; ++i) {
      double v = 0;
      switch (info.kind) {
        case ParamKind::weight: v = random.signed_magnitude(0.3, 1.0) / std::sqrt(fan_in); break;
        case ParamKind::router_weight: v = random.signed_magnitude(0.5, 1.5) / std::sqrt(fan_in); break;
        case ParamKind::bias: v = random.signed_magnitude(0.05, 0.3); break;
        case ParamKind::norm_gain: v = random.uniform(0.5, 1.5); break;
        case ParamKind::norm_bias: v = random.signed_magnitude(0.05, 0.3); break;
        case ParamKind::position: v = random.signed_magnitude(0.1, 0.5); break;
        case ParamKind::alpha: v = random.signed_magnitude(0.3, 0.8); break;
      }
      values[i] = static_cast<T>(v);
    }
  }
}

SingleThreaded::SingleThreaded() : previous_(thread_count()) { set_thread_count(1); }
SingleThreaded::~SingleThreaded() { set_thread_count(previous_); }

void expect_parameter_gradients(ParameterSet<double>& params, const std::vector<double>& analytic,
                                const std::function<double()>& loss, uint64_t sampling_seed, double tolerance,
                                const std::string& context) {
  constexpr int64_t kAllElementsUpTo = 64, kSampledElements = 20;
  TestRandom sampler(sampling_seed);
  for (const ParamInfo& info : params.infos()) {
    const std::vector<int64_t> indices =
        sampler.sample_indices(info.numel, info.numel <= kAllElementsUpTo ? info.numel : kSampledElements);
    const GradCheckReport report =
        check_gradient(info.name, params.values() + info.offset, analytic.data() + info.offset, info.numel, loss, {},
                       &indices);
    EXPECT_TRUE(within_tolerance(report, tolerance)) << context;
  }
}

std::string block_param(int64_t block, const std::string& suffix) {
  return "blocks." + std::to_string(block) + "." + suffix;
}

template <class T>
std::vector<T> embed_tokens(const ParameterSet<T>& params, const ModelConfig& config, const T* images,
                            int64_t batch) {
  const int64_t N = config.tokens(), D = config.dim, rows = batch * N;
  auto value = [&](const char* name) { return params.values() + params.info(name).offset; };
  std::vector<T> patches(rows * config.patch_dim()), embedded(rows * D);
  patchify(images, batch, config.image_height, config.image_width, config.channels, config.patch, patches.data());
  patch_embed_forward(patches.data(), rows, config.patch_dim(), value("patch_embed.weight"),
                      value("patch_embed.bias"), D, embedded.data());
  position_embed_forward(embedded.data(), value("pos_embed"), batch, N, D);
  return embedded;
}

template <class T>
std::vector<T> router_probabilities(const ParameterSet<T>& params, const ModelConfig& config,
                                    const std::vector<T>& embedded, int64_t batch) {
  const int64_t rows = batch * config.tokens();
  std::vector<T> probs(rows * config.experts);
  router_forward(embedded.data(), rows, config.dim, params.values() + params.info("router.weight").offset,
                 params.values() + params.info("router.bias").offset, config.experts, probs.data());
  return probs;
}

template std::vector<float> embed_tokens<float>(const ParameterSet<float>&, const ModelConfig&, const float*, int64_t);
template std::vector<double> embed_tokens<double>(const ParameterSet<double>&, const ModelConfig&, const double*,
                                                  int64_t);
template std::vector<float> router_probabilities<float>(const ParameterSet<float>&, const ModelConfig&,
                                                        const std::vector<float>&, int64_t);
template std::vector<double> router_probabilities<double>(const ParameterSet<double>&, const ModelConfig&,
                                                          const std::vector<double>&, int64_t);
template Batch<float> random_batch<float>(const ModelConfig&, int64_t, uint64_t);
template Batch<double> random_batch<double>(const ModelConfig&, int64_t, uint64_t);
template void randomise_parameters<float>(ParameterSet<float>&, uint64_t);
template void randomise_parameters<double>(ParameterSet<double>&, uint64_t);

}  // namespace mone::testing
