// Finite-difference gradient checks and buffer comparisons, shared by the
// model tests and (later) the CUDA tests.
//
// A check perturbs one element at a time by +-eps, recomputes a scalar loss
// and compares the central difference (L(x+eps) - L(x-eps)) / 2eps with the
// analytic derivative. Error of one element:
//     |analytic - numeric| / max(|analytic|, |numeric|, scale_floor)
// i.e. relative, except that derivatives below scale_floor (1e-2) are
// compared in absolute terms: in double with eps = 1e-6 the central
// difference itself carries round-off of ~1e-16 * sum|terms of L| / eps,
// measured at 2e-10 to 2e-9 for the losses of these tests, so a relative
// error of a derivative near zero measures that noise, not the backward pass.
// With the floor at 1e-2 that noise costs at most ~2e-7 of a 1e-6 tolerance,
// while a wrong term in a backward (an error of the order of the derivative)
// still fails for any derivative above ~1e-8.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mone::testing {

struct GradCheckOptions {
  double eps = 1e-6;
  double scale_floor = 1e-2;
};

struct ElementError {
  int64_t index = -1;
  double analytic = 0;
  double numeric = 0;
  double error = 0;
};

struct GradCheckReport {
  std::string name;
  int64_t checked = 0;
  ElementError worst;  // the element with the largest error
  std::string describe() const;
};

// How the check reads and writes the element being perturbed; lets the same
// check run on host buffers, device buffers or model parameters. `set` must
// restore the exact original value when given it back.
struct ElementAccess {
  std::function<double(int64_t)> get;
  std::function<void(int64_t, double)> set;
};

// Checks d loss / d element for every index in `indices`.
GradCheckReport check_gradient(const std::string& name, const std::vector<int64_t>& indices,
                               const ElementAccess& access,
                               const std::function<double(int64_t)>& analytic,
                               const std::function<double()>& loss,
                               const GradCheckOptions& options = {});

// Host-buffer form: values[i] is perturbed, analytic[i] is its derivative. All
// n elements are checked unless `indices` is given.
GradCheckReport check_gradient(const std::string& name, double* values, const double* analytic,
                               int64_t n, const std::function<double()>& loss,
                               const GradCheckOptions& options = {},
                               const std::vector<int64_t>* indices = nullptr);

// gtest verdict: worst element within `tolerance`, with the report as message.
// With MONE_GRADCHECK_VERBOSE=1 in the environment every report is printed,
// passing or not, to see the margin under the tolerance.
::testing::AssertionResult within_tolerance(const GradCheckReport& report, double tolerance);
// Every report within `tolerance`; the message lists the ones that are not.
::testing::AssertionResult all_within_tolerance(const std::vector<GradCheckReport>& reports,
                                                double tolerance);

// ---- Harness for one op's forward/backward pair.
//
// The loss is L = sum(w * out) with a random projection w (never zero), so
// dL/dout = w is what the backward receives. Before the backward every
// gradient buffer is pre-filled: with a random value P where the op's contract
// is "+=" (accumulate: the analytic gradient is then grad - P), and with a
// large sentinel where it is "=" (assign: any leftover of the sentinel, or an
// accumulation onto it, shows up as an error). So each check also tests the
// op's write convention.
enum class GradWrite { assign, accumulate };
// What an assign-mode gradient buffer holds before the backward runs.
constexpr double kAssignSentinel = 1.0e3;

class OpGradientCheck {
 public:
  explicit OpGradientCheck(uint64_t seed, GradCheckOptions options = {});

  // An input the forward reads and the buffer where the backward puts its
  // gradient (resized to match values). `indices`, when given, limits the
  // elements checked (e.g. to skip the padding of a strided buffer).
  void add_input(const std::string& name, std::vector<double>* values, std::vector<double>* grad,
                 GradWrite write, std::vector<int64_t> indices = {});

  // forward(out) recomputes `out` from the current inputs (it sizes `out`);
  // backward(dout) runs the op's backward into the registered gradient buffers.
  std::vector<GradCheckReport> run(const std::function<void(std::vector<double>& out)>& forward,
                                   const std::function<void(const std::vector<double>& dout)>& backward);

  // The prefill value used for an accumulate-mode buffer (valid after run).
  const std::vector<double>& prefill(const std::string& name) const;

 private:
  struct Input {
    std::string name;
    std::vector<double>* values;
    std::vector<double>* grad;
    GradWrite write;
    std::vector<int64_t> indices;
    std::vector<double> prefill;
  };
  uint64_t seed_;
  GradCheckOptions options_;
  std::vector<Input> inputs_;
};

// ---- Comparing two results of the same computation.
//
// error of element i = |a_i - b_i| / max(1, |a_i|, |b_i|): relative for large
// values, absolute below 1 (a tolerance of 1e-12 then means 1e-12 absolute for
// O(1) logits and 1e-12 relative for large ones).
struct CompareReport {
  std::string name;
  int64_t count = 0;
  int64_t worst_index = -1;
  double a = 0, b = 0;
  double worst_error = 0;
  bool bitwise_equal = true;
  std::string describe() const;
};

CompareReport compare_buffers(const std::string& name, const double* a, const double* b, int64_t n);
CompareReport compare_buffers(const std::string& name, const float* a, const float* b, int64_t n);
CompareReport compare_buffers(const std::string& name, const int32_t* a, const int32_t* b, int64_t n);

::testing::AssertionResult within_tolerance(const CompareReport& report, double tolerance);
::testing::AssertionResult bitwise_equal(const CompareReport& report);

}  // namespace mone::testing
