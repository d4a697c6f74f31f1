#include "tests/cuda/device_test_support.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "model/cuda/check.h"

namespace mone::testing {

namespace {
template <class T> T to_device_type(double x) { return static_cast<T>(static_cast<float>(x)); }
template <> bf16 to_device_type<bf16>(double x) { return __float2bfloat16_rn(static_cast<float>(x)); }
double to_double(float x) { return x; }
double to_double(bf16 x) { return __bfloat162float(x); }

// cudaMemset and pageable cudaMemcpy run on the legacy default stream, which
// the context's non-blocking stream does not wait for: finish them before an
// op can read (or a late memset overwrite) the array.
void settle_legacy_stream() { MONE_CUDA_CHECK(cudaDeviceSynchronize()); }
}  // namespace

void fill_guard(void* device, size_t bytes) {
  MONE_CUDA_CHECK(cudaMemset(device, 0xff, bytes));
  settle_legacy_stream();
}

bool guard_intact(const void* device, size_t bytes) {
  std::vector<unsigned char> host(bytes);
  MONE_CUDA_CHECK(cudaDeviceSynchronize());
  MONE_CUDA_CHECK(cudaMemcpy(host.data(), device, bytes, cudaMemcpyDeviceToHost));
  for (const unsigned char byte : host)
    if (byte != 0xff) return false;
  return true;
}

template <class T>
std::vector<double> rounded(const std::vector<double>& values) {
  std::vector<double> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = to_double(to_device_type<T>(values[i]));
  return out;
}

template <class T>
DeviceArray<T> upload(const std::vector<double>& values) {
  DeviceArray<T> array(static_cast<int64_t>(values.size()));
  std::vector<T> host(values.size());
  for (size_t i = 0; i < values.size(); ++i) host[i] = to_device_type<T>(values[i]);
  MONE_CUDA_CHECK(cudaMemcpy(array.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  settle_legacy_stream();
  return array;
}

template <class T>
DeviceArray<T> poisoned(int64_t n) {
  return DeviceArray<T>(n);  // created 0xff throughout
}

template <class T>
std::vector<double> download(const DeviceArray<T>& array, const cuda::DeviceContext& context) {
  context.synchronize();
  std::vector<T> host(static_cast<size_t>(array.size()));
  MONE_CUDA_CHECK(cudaMemcpy(host.data(), array.get(), host.size() * sizeof(T), cudaMemcpyDeviceToHost));
  if (!array.guards_intact()) ADD_FAILURE() << "a write out of bounds of a device array of " << array.size();
  std::vector<double> out(host.size());
  for (size_t i = 0; i < host.size(); ++i) out[i] = to_double(host[i]);
  return out;
}

std::vector<int32_t> download_ints(const DeviceArray<int32_t>& array, const cuda::DeviceContext& context) {
  context.synchronize();
  std::vector<int32_t> host(static_cast<size_t>(array.size()));
  MONE_CUDA_CHECK(cudaMemcpy(host.data(), array.get(), host.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
  if (!array.guards_intact()) ADD_FAILURE() << "a write out of bounds of a device array of " << array.size();
  return host;
}

DeviceArray<int32_t> upload_ints(const std::vector<int32_t>& values) {
  DeviceArray<int32_t> array(static_cast<int64_t>(values.size()));
  MONE_CUDA_CHECK(cudaMemcpy(array.get(), values.data(), values.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  settle_legacy_stream();
  return array;
}

::testing::AssertionResult near_reference(const std::string& name, const std::vector<double>& got,
                                          const std::vector<double>& want, double tolerance) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << name << ": " << got.size() << " values, reference " << want.size();
  double scale = 0, worst = 0;
  size_t worst_index = 0;
  for (const double w : want) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    // Non-finite on either side fails (a NaN difference would compare as no error).
    const double error = std::isfinite(got[i]) && std::isfinite(want[i]) ? std::abs(got[i] - want[i]) : INFINITY;
    if (error > worst || i == 0) {
      worst = error;
      worst_index = i;
    }
  }
  const double relative = scale > 0 ? worst / scale : worst;
  std::ostringstream report;
  report.precision(9);
  report << name << ": " << got.size() << " values, error " << relative << " (worst at [" << worst_index
         << "]: " << (got.empty() ? 0 : got[worst_index]) << " vs " << (want.empty() ? 0 : want[worst_index])
         << ", scale " << scale << ")";
  if (relative <= tolerance) return ::testing::AssertionSuccess() << report.str();
  return ::testing::AssertionFailure() << report.str() << " > tolerance " << tolerance;
}

::testing::AssertionResult bitwise_same(const std::string& name, const std::vector<double>& a,
                                        const std::vector<double>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << name << ": sizes differ";
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0)
      return ::testing::AssertionFailure() << name << ": first difference at [" << i << "]: " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

#define MONE_INSTANTIATE(T)                                                                       \
  template std::vector<double> rounded<T>(const std::vector<double>&);                            \
  template DeviceArray<T> upload<T>(const std::vector<double>&);                                  \
  template DeviceArray<T> poisoned<T>(int64_t);                                                   \
  template std::vector<double> download<T>(const DeviceArray<T>&, const cuda::DeviceContext&);
MONE_INSTANTIATE(float)
MONE_INSTANTIATE(bf16)
#undef MONE_INSTANTIATE

}  // namespace mone::testing
