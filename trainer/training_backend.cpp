// The choice of backend, and the one place where a build without CUDA
// answers --device cuda.
#include "trainer/training_backend.h"

#include "trainer/cpu_training_backend.h"
#include "trainer/exit_codes.h"
#ifdef MONE_HAVE_CUDA
#include "trainer/cuda_training_backend.h"
#endif

namespace mone {

namespace {
#ifndef MONE_HAVE_CUDA
[[noreturn]] void no_cuda_in_this_build() {
  throw UsageError("--device cuda: this build of mone has no CUDA backend (it was configured without a CUDA "
                   "compiler, or with MONE_CUDA=OFF); use --device cpu, or rebuild with nvcc (docs/cuda.md)");
}
#endif
// The models the device step cannot run yet.
void require_cpu_where_needed(const std::string& device, const ModelConfig& config) {
  if (device != "cpu" && config.router == Router::random)
    throw UsageError("--device " + device + ": the random router runs on the CPU only in this build; use --device cpu");
  if (device != "cpu" && config.gelu == Gelu::erf)
    throw UsageError("--device " + device + ": the erf GELU runs on the CPU only in this build; use --device cpu");
}
}  // namespace

BucketOptions bucket_options(const TrainOptions& options) {
  BucketOptions buckets;
  buckets.bucket_bytes = static_cast<int64_t>(options.bucket_mb * 1048576.0);
  buckets.first_bucket_bytes = static_cast<int64_t>(options.first_bucket_mb * 1048576.0);
  buckets.wire = options.allreduce_dtype == "bf16" ? ElementType::bfloat16 : ElementType::float32;
  return buckets;
}

std::unique_ptr<TrainingBackend> make_training_backend(const TrainOptions& options, const ModelConfig& config,
                                                       const World& world, Communicator& host) {
  require_cpu_where_needed(options.device, config);
  if (options.device == "cpu") return make_cpu_training_backend(options, config, host);
#ifdef MONE_HAVE_CUDA
  return make_cuda_training_backend(options, config, world, host);
#else
  (void)world;
  no_cuda_in_this_build();
#endif
}

std::unique_ptr<ForwardModel> make_forward_model(const std::string& device, const std::string& precision,
                                                 const ModelConfig& config, const std::vector<float>& values,
                                                 int64_t max_batch, const World& world) {
  require_cpu_where_needed(device, config);
  if (device == "cpu") {
    auto forward = std::make_unique<OwnedCpuModel>(config, 0);
    std::copy(values.begin(), values.end(), forward->model().params().values());
    return forward;
  }
#ifdef MONE_HAVE_CUDA
  return make_cuda_forward_model(precision, config, values, max_batch, world);
#else
  (void)precision, (void)max_batch, (void)world;
  no_cuda_in_this_build();
#endif
}

}  // namespace mone
