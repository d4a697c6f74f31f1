// Capacity distribution from an effective capacity (method page, section 1):
// c maximises sum_j w_j c_j - beta sum_j c_j log c_j subject to sum c_j = 1 and
// sum c_j a_j = e_c, with a_j = d_j / D, w_j = delta^(j-1), beta 10, delta 2.
#pragma once

#include <cstdint>
#include <vector>

namespace mone {

// c_1..c_E (index 0 = smallest expert). Throws ConfigError when e_c is outside
// (2^(1-E), 1].
std::vector<double> capacity_for(double effective_capacity, int64_t experts);

// k_j = floor(c_j N) tokens per image for j > 1; expert 1 takes the rest.
std::vector<int64_t> tokens_per_expert(const std::vector<double>& capacity, int64_t tokens);

// The e_c actually realised by k (after flooring): sum_j k_j a_j / N.
double realised_capacity(const std::vector<int64_t>& tokens_per_expert);

}  // namespace mone
