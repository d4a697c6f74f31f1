// The one exception type the data layer throws. Every message names the file
// (or option) concerned and what is wrong with it, so a user can act on it
// without a debugger.
#pragma once

#include <stdexcept>
#include <string>

namespace mone {

class DataError : public std::runtime_error {
 public:
  explicit DataError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mone
