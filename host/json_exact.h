// Reads a JSON value as a C++ type only when the type holds it: an integer that fits exactly, a
// number within a floating-point type's range, a boolean, a string. Readers of files use this:
// nlohmann's get<int>() truncates 1.5, wraps 2^64-1 and converts 1e300 out of range (undefined).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace fmnist {

template <typename T, typename Json>
std::optional<T> exact_json_value(const Json& v) {
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.template get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.template get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_number()) {  // 1e300 is beyond a float (nlohmann refuses to parse 1e400)
      const double x = v.template get<double>();
      if (std::fabs(x) <= static_cast<double>(std::numeric_limits<T>::max())) return static_cast<T>(x);
    }
  } else {
    static_assert(std::is_integral_v<T>, "exact_json_value reads bool, std::string, floating-point and integer types");
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    if (v.is_number_unsigned()) {
      const auto x = v.template get<std::uint64_t>();
      if (x <= max) return static_cast<T>(x);
    } else if (v.is_number_integer()) {
      const auto x = v.template get<std::int64_t>();
      if (x >= 0 ? static_cast<std::uint64_t>(x) <= max
                 : std::is_signed_v<T> && x >= static_cast<std::int64_t>(std::numeric_limits<T>::min()))
        return static_cast<T>(x);
    }
  }
  return std::nullopt;
}

// What exact_json_value<T> accepts, for an error message: "an integer in [0, 255]", "a number"...
template <typename T>
std::string exact_json_kind() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, float>) return "a number within a float's range";
  else if constexpr (std::is_floating_point_v<T>) return "a finite number";
  else
    return "an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
           std::to_string(std::numeric_limits<T>::max()) + "]";
}

// Why exact_json_value<T> refused `v`, the value of `field`, in one line:
// "field 'epochs' must be an integer in [-2147483648, 2147483647], got 1e+300".
template <typename T, typename Json>
std::string exact_json_refusal(const std::string& field, const Json& v) {
  return "field '" + field + "' must be " + exact_json_kind<T>() + ", got " + v.dump();
}

}  // namespace fmnist
