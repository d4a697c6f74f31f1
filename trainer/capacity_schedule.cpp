#include "trainer/capacity_schedule.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "model/capacity.h"
#include "model/random.h"
#include "trainer/parse_number.h"

namespace mone {

namespace {

double parse_capacity(const std::string& text, int64_t experts) {
  const std::optional<double> parsed = parse_number<double>(text);
  if (!parsed) throw std::invalid_argument("'" + text + "' is not a number");
  const double value = *parsed;
  try {
    capacity_for(value, experts);
  } catch (const std::exception& error) {
    throw std::invalid_argument("e_c " + text + " is not feasible with " + std::to_string(experts) +
                                " experts: " + error.what());
  }
  return value;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

std::vector<double> default_capacities(int64_t experts) {
  std::vector<double> values;
  const double lowest = std::ldexp(1.0, static_cast<int>(1 - experts));
  for (int i = 0; i <= 8; ++i) {
    const double value = (15 + 10 * i) / 100.0;
    if (value > lowest) values.push_back(value);
  }
  values.push_back(1.0);
  return values;
}

std::vector<double> parse_capacity_list(const std::string& text, int64_t experts) {
  std::vector<double> values;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) values.push_back(parse_capacity(part, experts));
  if (values.empty()) throw std::invalid_argument("the list of capacities is empty");
  return values;
}

std::vector<double> evaluation_capacities(const std::string& text, const ModelConfig& config) {
  if (!config.is_vmoe())
    return text.empty() ? default_capacities(config.experts) : parse_capacity_list(text, config.experts);
  if (text.empty()) return {1.0};
  const std::vector<double> values = parse_capacity_list(text, config.experts);
  for (const double value : values)
    if (value != 1.0)
      throw std::invalid_argument("V-MoE routes whole images and has no effective capacity: only e_c 1, got " +
                                  text);
  return values;
}

CapacitySchedule CapacitySchedule::parse(const std::string& spec, int64_t experts, int64_t full_capacity_steps) {
  CapacitySchedule schedule;
  schedule.full_capacity_steps_ = full_capacity_steps;
  if (starts_with(spec, "fixed:")) {
    schedule.kind_ = Kind::fixed;
    schedule.values_ = {parse_capacity(spec.substr(6), experts)};
  } else if (spec == "random") {
    schedule.kind_ = Kind::set;
    schedule.values_ = default_capacities(experts);
  } else if (starts_with(spec, "random:")) {
    schedule.kind_ = Kind::set;
    schedule.values_ = parse_capacity_list(spec.substr(7), experts);
  } else if (starts_with(spec, "range:")) {
    const std::string bounds = spec.substr(6);
    const size_t dash = bounds.find('-');
    if (dash == std::string::npos) throw std::invalid_argument("range: expected LO-HI, got '" + bounds + "'");
    const double low = parse_capacity(bounds.substr(0, dash), experts);
    const double high = parse_capacity(bounds.substr(dash + 1), experts);
    if (!(low < high)) throw std::invalid_argument("range: LO must be below HI, got '" + bounds + "'");
    schedule.kind_ = Kind::range;
    schedule.values_ = {low, high};
  } else if (spec == "sandwich" || starts_with(spec, "sandwich:")) {
    schedule.kind_ = Kind::sandwich;
    schedule.values_ = default_capacities(experts);
    schedule.sandwich_draws_ = spec == "sandwich" ? 2 : -1;
    if (spec != "sandwich") {
      const std::string count = spec.substr(9);
      const bool digits = !count.empty() && count.size() <= 2 &&
                          std::all_of(count.begin(), count.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      if (!digits) throw std::invalid_argument("sandwich:K: K must be a whole number from 0 to 16, got '" + count + "'");
      schedule.sandwich_draws_ = std::stoll(count);
      if (schedule.sandwich_draws_ > 16)
        throw std::invalid_argument("sandwich:K: K must be a whole number from 0 to 16, got '" + count + "'");
    }
  } else {
    throw std::invalid_argument("'" + spec +
                                "' is not one of fixed:E, random, random:E1,E2,..., range:LO-HI, sandwich[:K]");
  }
  return schedule;
}

std::vector<double> CapacitySchedule::passes(uint64_t seed, int64_t step) const {
  if (step < full_capacity_steps_) return {1.0};
  // One uniform per (step, draw): the single-pass kinds use draw 0, as they always have.
  const auto uniform = [&](int64_t draw) {
    return random_uniform(seed, kCapacityStream, static_cast<uint64_t>(step) + static_cast<uint64_t>(draw) * (1ull << 40));
  };
  const auto from_set = [&](double u) { return values_[static_cast<size_t>(u * static_cast<double>(values_.size()))]; };
  switch (kind_) {
    case Kind::fixed:
      return {values_[0]};
    case Kind::set:
      return {from_set(uniform(0))};
    case Kind::range:
      return {values_[0] + uniform(0) * (values_[1] - values_[0])};
    case Kind::sandwich: {
      std::vector<double> result = {1.0, *std::min_element(values_.begin(), values_.end())};
      for (int64_t k = 0; k < sandwich_draws_; ++k) result.push_back(from_set(uniform(k)));
      return result;
    }
  }
  return {values_[0]};
}

}  // namespace mone
