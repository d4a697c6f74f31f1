// Comma-separated option values ("1,0.5,0.3") for the benchmark programs.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options/errors.hpp>

namespace mone {

// Throws boost::program_options::error naming the option for a bad item.
template <class V>
std::vector<V> parse_list(const std::string& text, const char* option) {
  std::vector<V> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::stringstream one(item);
    V v;
    if (!(one >> v) || !one.eof())
      throw boost::program_options::error(std::string("--") + option + ": cannot parse '" + item + "'");
    values.push_back(v);
  }
  return values;
}

}  // namespace mone
