// One reading of a number from option text, for every option the option
// table cannot type itself (a capacity inside a list, a --set value).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace mone {

// The number `text` spells as a whole (std::stoll / std::stod syntax: leading
// blanks and a sign allowed, nothing after it); nullopt when it is not a
// number, is out of range, has trailing characters, or is not finite.
template <class T>
std::optional<T> parse_number(const std::string& text) {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, double>, "int64_t or double");
  size_t used = 0;
  T value = 0;
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      value = std::stoll(text, &used);
    } else {
      value = std::stod(text, &used);
    }
  } catch (const std::exception&) {  // not a number, or out of range
    return std::nullopt;
  }
  if (used == 0 || used != text.size()) return std::nullopt;
  if constexpr (std::is_same_v<T, double>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

}  // namespace mone
