#include "model/capacity.h"

#include <cmath>
#include <sstream>

#include "model/config.h"

namespace mone {

namespace {
constexpr double kBeta = 10.0;   // entropy weight (method page)
constexpr double kDelta = 2.0;   // preference w_j = delta^(j-1) for larger experts

// c_j ∝ exp((w_j - mu a_j) / beta), normalised in log space.
std::vector<double> distribution_at(double mu, int64_t experts) {
  std::vector<double> logits(experts), c(experts);
  double top = -INFINITY;
  for (int64_t j = 0; j < experts; ++j) {
    const double w = std::pow(kDelta, static_cast<double>(j));
    const double a = std::ldexp(1.0, static_cast<int>(j - (experts - 1)));
    logits[j] = (w - mu * a) / kBeta;
    top = std::max(top, logits[j]);
  }
  double sum = 0;
  for (int64_t j = 0; j < experts; ++j) sum += c[j] = std::exp(logits[j] - top);
  for (double& v : c) v /= sum;
  return c;
}

double mean_compute(const std::vector<double>& c) {
  const int64_t experts = static_cast<int64_t>(c.size());
  double e = 0;
  for (int64_t j = 0; j < experts; ++j) e += c[j] * std::ldexp(1.0, static_cast<int>(j - (experts - 1)));
  return e;
}
}  // namespace

std::vector<double> capacity_for(double effective_capacity, int64_t experts) {
  const double lowest = std::ldexp(1.0, static_cast<int>(1 - experts));
  // With one expert the interval is empty but e_c = 1 (dense) is the one feasible value.
  if (!(effective_capacity == 1.0 || (effective_capacity > lowest && effective_capacity < 1.0))) {
    std::ostringstream out;
    out << "effective capacity e_c = " << effective_capacity << " is infeasible for " << experts
        << " experts: it must lie in (2^(1-E), 1] = (" << lowest << ", 1]";
    throw ConfigError(out.str());
  }
  std::vector<double> c(experts, 0.0);
  if (effective_capacity == 1.0 || experts == 1) {  // every token at the full expert
    c.back() = 1.0;
    return c;
  }
  // The constrained mean compute falls monotonically as mu grows: bisect.
  double low = -1e7, high = 1e7;
  for (int iteration = 0; iteration < 200; ++iteration) {
    const double mu = 0.5 * (low + high);
    if (mean_compute(distribution_at(mu, experts)) > effective_capacity)
      low = mu;
    else
      high = mu;
  }
  return distribution_at(0.5 * (low + high), experts);
}

std::vector<int64_t> tokens_per_expert(const std::vector<double>& capacity, int64_t tokens) {
  const int64_t experts = static_cast<int64_t>(capacity.size());
  std::vector<int64_t> k(experts, 0);
  int64_t assigned = 0;
  for (int64_t j = experts - 1; j >= 1; --j) {
    // The epsilon keeps c_j N = 14 from flooring to 13 through rounding error.
    k[j] = static_cast<int64_t>(std::floor(capacity[j] * static_cast<double>(tokens) + 1e-9));
    assigned += k[j];
  }
  k[0] = tokens - assigned;
  return k;
}

double realised_capacity(const std::vector<int64_t>& k) {
  const int64_t experts = static_cast<int64_t>(k.size());
  double compute = 0;
  int64_t tokens = 0;
  for (int64_t j = 0; j < experts; ++j) {
    compute += static_cast<double>(k[j]) * std::ldexp(1.0, static_cast<int>(j - (experts - 1)));
    tokens += k[j];
  }
  return compute / static_cast<double>(tokens);
}

}  // namespace mone
