// Command-line helpers shared by the benchmark programs.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <iostream>

#include <boost/program_options.hpp>

namespace mone {

// Parses argv into `options`' variables. Returns false after printing the
// help when --help was given (the caller exits 0); throws on a bad option.
inline bool parse_options(int argc, char** argv, const boost::program_options::options_description& options) {
  boost::program_options::variables_map vm;
  boost::program_options::store(boost::program_options::parse_command_line(argc, argv, options), vm);
  if (vm.count("help")) {
    std::cout << options << "\n";
    return false;
  }
  boost::program_options::notify(vm);
  return true;
}

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
