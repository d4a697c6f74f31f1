// The one skip of every test that needs CUDA devices: MONE_SKIP_WITHOUT_GPUS(n)
// skips the test, with the reason, unless this process sees n devices. Built
// only with the CUDA backend (mone_test_gpu).
#pragma once

#include <string>

#include <gtest/gtest.h>

namespace mone::testing {

// Why a test that needs `devices` visible CUDA devices cannot run here, or
// "" when it can.
std::string gpu_skip_reason(int devices);

}  // namespace mone::testing

#define MONE_SKIP_WITHOUT_GPUS(devices)                                                  \
  do {                                                                                   \
    const std::string mone_gpu_skip_reason_ = ::mone::testing::gpu_skip_reason(devices); \
    if (!mone_gpu_skip_reason_.empty()) GTEST_SKIP() << mone_gpu_skip_reason_;           \
  } while (0)
