// Helpers of the CUDA tests: skipping without a device (gpu_skip.h), device arrays filled
// from host values or poisoned with NaN, and the comparison with the CPU
// reference.
//
// Error measure of a comparison: max_i |got_i - want_i| / max_i |want_i|
// (normwise relative error in the max norm). Per element relative error would
// fail on values that cancel to near zero, which carry the absolute error of
// their large terms; this measure states the error relative to the output's
// scale. NaN or inf anywhere in `got` or the reference fails, so an element
// the op never wrote (it still holds the NaN poison) fails.
//
// Modes: T = float is the fp32 mode (tolerance kFp32Tolerance, 1e-5), T =
// bf16 the training mode (kBf16Tolerance, 2e-2). The CPU reference runs in
// double on the inputs as rounded to T, so only the device's own rounding is
// measured.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/cuda/context.h"
#include "model/cuda/device_memory.h"
#include "tests/common/gpu_skip.h"

namespace mone::testing {

using bf16 = __nv_bfloat16;
constexpr double kFp32Tolerance = 1e-5;
constexpr double kBf16Tolerance = 2e-2;
template <class T> constexpr double tolerance_of() { return sizeof(T) == 4 ? kFp32Tolerance : kBf16Tolerance; }

// The values as T holds them (round to nearest even for bf16).
template <class T>
std::vector<double> rounded(const std::vector<double>& values);

// Every byte of `bytes` device bytes set to 0xff / whether every byte still is.
void fill_guard(void* device, size_t bytes);
bool guard_intact(const void* device, size_t bytes);

// n elements of T on the device between two guard bands, every byte 0xff
// (NaN in float and bf16) when created. download() fails the test when a
// guard byte changed: an op wrote out of bounds.
template <class T>
class DeviceArray {
 public:
  static constexpr size_t kGuardBytes = 256;  // keeps get() 256-byte aligned
  explicit DeviceArray(int64_t n)
      : n_(n), buffer_(static_cast<size_t>(n) * sizeof(T) + 2 * kGuardBytes, "test array") {
    fill_guard(buffer_.data(), buffer_.bytes());
  }
  T* get() const { return reinterpret_cast<T*>(buffer_.as<char>() + kGuardBytes); }
  int64_t size() const { return n_; }
  // Waits for the device.
  bool guards_intact() const {
    return guard_intact(buffer_.data(), kGuardBytes) &&
           guard_intact(buffer_.as<char>() + buffer_.bytes() - kGuardBytes, kGuardBytes);
  }

 private:
  int64_t n_;
  cuda::DeviceBuffer buffer_;
};

// Device array holding `values` rounded to T.
template <class T>
DeviceArray<T> upload(const std::vector<double>& values);
// Device array of n elements, every byte 0xff: NaN in float and in bf16
// (what every DeviceArray starts as; the name says it at the call).
template <class T>
DeviceArray<T> poisoned(int64_t n);
// Waits for the context's stream, then copies back; fails the test (not the
// comparison) when the array's guard bands were written.
template <class T>
std::vector<double> download(const DeviceArray<T>& array, const cuda::DeviceContext& context);
std::vector<int32_t> download_ints(const DeviceArray<int32_t>& array, const cuda::DeviceContext& context);
DeviceArray<int32_t> upload_ints(const std::vector<int32_t>& values);

// Normwise relative error as described at the top; fails above `tolerance`.
::testing::AssertionResult near_reference(const std::string& name, const std::vector<double>& got,
                                          const std::vector<double>& want, double tolerance);
// Bitwise equality of two downloads.
::testing::AssertionResult bitwise_same(const std::string& name, const std::vector<double>& a,
                                        const std::vector<double>& b);

}  // namespace mone::testing
