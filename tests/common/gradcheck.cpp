#include "tests/common/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "tests/common/test_random.h"

namespace mone::testing {

std::string GradCheckReport::describe() const {
  std::ostringstream s;
  s.precision(10);
  s << name << ": " << checked << " elements checked";
  if (worst.index >= 0) {
    s << ", worst at [" << worst.index << "]: analytic " << worst.analytic << ", numeric "
      << worst.numeric << ", error " << worst.error;
  }
  return s.str();
}

GradCheckReport check_gradient(const std::string& name, const std::vector<int64_t>& indices,
                               const ElementAccess& access,
                               const std::function<double(int64_t)>& analytic,
                               const std::function<double()>& loss, const GradCheckOptions& options) {
  GradCheckReport report;
  report.name = name;
  for (int64_t i : indices) {
    const double original = access.get(i);
    access.set(i, original + options.eps);
    const double loss_plus = loss();
    access.set(i, original - options.eps);
    const double loss_minus = loss();
    access.set(i, original);
    const double numeric = (loss_plus - loss_minus) / (2 * options.eps);
    const double a = analytic(i);
    const double scale = std::max({std::abs(a), std::abs(numeric), options.scale_floor});
    double error = std::abs(a - numeric) / scale;
    if (!std::isfinite(error)) error = INFINITY;  // a NaN must fail, not compare false
    ++report.checked;
    if (report.worst.index < 0 || error > report.worst.error) report.worst = {i, a, numeric, error};
  }
  return report;
}

GradCheckReport check_gradient(const std::string& name, double* values, const double* analytic,
                               int64_t n, const std::function<double()>& loss,
                               const GradCheckOptions& options, const std::vector<int64_t>* indices) {
  std::vector<int64_t> all;
  if (!indices) {
    all.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
    indices = &all;
  }
  ElementAccess access{[values](int64_t i) { return values[i]; },
                       [values](int64_t i, double v) { values[i] = v; }};
  return check_gradient(name, *indices, access, [analytic](int64_t i) { return analytic[i]; }, loss,
                        options);
}

::testing::AssertionResult within_tolerance(const GradCheckReport& report, double tolerance) {
  static const bool verbose = [] {
    const char* v = std::getenv("MONE_GRADCHECK_VERBOSE");
    return v && std::string(v) == "1";
  }();
  if (verbose) std::cout << "  [gradcheck] " << report.describe() << "\n";
  if (report.checked == 0) return ::testing::AssertionFailure() << report.name << ": nothing checked";
  if (report.worst.error <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << report.describe() << " > tolerance " << tolerance;
}

::testing::AssertionResult all_within_tolerance(const std::vector<GradCheckReport>& reports,
                                                double tolerance) {
  bool ok = !reports.empty();
  ::testing::AssertionResult result = ::testing::AssertionFailure();
  if (reports.empty()) result << "no reports";
  for (const GradCheckReport& report : reports) {
    ::testing::AssertionResult one = within_tolerance(report, tolerance);
    if (!one) {
      ok = false;
      result << "\n  " << one.message();
    }
  }
  return ok ? ::testing::AssertionSuccess() : result;
}

OpGradientCheck::OpGradientCheck(uint64_t seed, GradCheckOptions options)
    : seed_(seed), options_(options) {}

void OpGradientCheck::add_input(const std::string& name, std::vector<double>* values,
                                std::vector<double>* grad, GradWrite write, std::vector<int64_t> indices) {
  grad->assign(values->size(), 0.0);
  if (indices.empty()) {
    indices.resize(values->size());
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  }
  inputs_.push_back({name, values, grad, write, std::move(indices), {}});
}

const std::vector<double>& OpGradientCheck::prefill(const std::string& name) const {
  for (const Input& input : inputs_)
    if (input.name == name) return input.prefill;
  throw std::invalid_argument("no input " + name);
}

std::vector<GradCheckReport> OpGradientCheck::run(
    const std::function<void(std::vector<double>& out)>& forward,
    const std::function<void(const std::vector<double>& dout)>& backward) {
  TestRandom random(seed_);
  std::vector<double> out;
  forward(out);
  const std::vector<double> projection = random.nonzero_vector(static_cast<int64_t>(out.size()), 0.5, 1.5);
  auto loss = [&] {
    forward(out);
    double sum = 0;
    for (size_t i = 0; i < out.size(); ++i) sum += projection[i] * out[i];
    return sum;
  };

  // The sentinel for "=" buffers is large, so that adding to it instead of
  // assigning leaves an error far above any tolerance.
  for (Input& input : inputs_) {
    if (input.write == GradWrite::accumulate) {
      input.prefill = random.nonzero_vector(static_cast<int64_t>(input.values->size()), 0.25, 0.75);
      *input.grad = input.prefill;
    } else {
      input.prefill.assign(input.values->size(), 0.0);
      input.grad->assign(input.values->size(), kAssignSentinel);
    }
  }
  backward(projection);

  std::vector<GradCheckReport> reports;
  for (Input& input : inputs_) {
    std::vector<double> analytic(input.values->size());
    for (size_t i = 0; i < analytic.size(); ++i) analytic[i] = (*input.grad)[i] - input.prefill[i];
    reports.push_back(check_gradient(input.name, input.values->data(), analytic.data(),
                                     static_cast<int64_t>(analytic.size()), loss, options_,
                                     &input.indices));
  }
  return reports;
}

// ---- comparisons

std::string CompareReport::describe() const {
  std::ostringstream s;
  s.precision(17);
  s << name << ": " << count << " elements";
  if (bitwise_equal) {
    s << ", bitwise equal";
  } else {
    s << ", worst at [" << worst_index << "]: " << a << " vs " << b << ", error " << worst_error;
  }
  return s.str();
}

template <class T>
static CompareReport compare_typed(const std::string& name, const T* a, const T* b, int64_t n) {
  CompareReport report;
  report.name = name;
  report.count = n;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) report.bitwise_equal = false;
    const double x = static_cast<double>(a[i]);
    const double y = static_cast<double>(b[i]);
    double error = std::abs(x - y) / std::max({1.0, std::abs(x), std::abs(y)});
    if (!std::isfinite(error)) error = (std::memcmp(&a[i], &b[i], sizeof(T)) == 0) ? 0.0 : INFINITY;
    if (report.worst_index < 0 || error > report.worst_error) {
      report.worst_index = i;
      report.worst_error = error;
      report.a = x;
      report.b = y;
    }
  }
  return report;
}

CompareReport compare_buffers(const std::string& name, const double* a, const double* b, int64_t n) {
  return compare_typed(name, a, b, n);
}
CompareReport compare_buffers(const std::string& name, const float* a, const float* b, int64_t n) {
  return compare_typed(name, a, b, n);
}
CompareReport compare_buffers(const std::string& name, const int32_t* a, const int32_t* b, int64_t n) {
  return compare_typed(name, a, b, n);
}

::testing::AssertionResult within_tolerance(const CompareReport& report, double tolerance) {
  if (report.worst_error <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << report.describe() << " > tolerance " << tolerance;
}

::testing::AssertionResult bitwise_equal(const CompareReport& report) {
  if (report.bitwise_equal) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << report.describe();
}

}  // namespace mone::testing
