// Checks for the numbers custosd and custos take on their command lines.
// CLI11 2.1 reads integers with base 0 and without a range check, so "010"
// was 8, "0x2" 2, "-5" a huge unsigned number and an overflow the largest;
// and a floating-point option took "nan", which passes every range check.

#ifndef CUSTOS_SERVER_NUMBER_OPTION_H_
#define CUSTOS_SERVER_NUMBER_OPTION_H_

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <string>

namespace custos::server {

// Decimal digits only (a '-' first when `signed_ok`), no leading zero but
// in "0", at most `max_digits` digits (19 by default: below 2^63).
inline CLI::Validator DecimalNumber(size_t max_digits = 19,
                                    bool signed_ok = false) {
  return CLI::Validator(
      [max_digits, signed_ok](const std::string& text) -> std::string {
        const std::string digits =
            signed_ok && text.starts_with('-') ? text.substr(1) : text;
        const bool decimal =
            !digits.empty() &&
            digits.find_first_not_of("0123456789") == std::string::npos &&
            (digits.size() == 1 || digits[0] != '0');
        if (!decimal) return "a decimal number is expected";
        if (digits.size() > max_digits) {
          return "a decimal number of at most " + std::to_string(max_digits) +
                 " digits is expected";
        }
        return "";
      },
      "NUMBER");
}

// A finite decimal number ("0.5", "10", "1e2"): not "nan", "inf" or a hex
// float.
inline CLI::Validator FiniteNumber() {
  return CLI::Validator(
      [](const std::string& text) -> std::string {
        if (text.empty() ||
            text.find_first_not_of("0123456789.eE+-") != std::string::npos) {
          return "a decimal number is expected";
        }
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (end != text.c_str() + text.size() || !std::isfinite(value))
          return "a decimal number is expected";
        return "";
      },
      "NUMBER");
}

}  // namespace custos::server

#endif  // CUSTOS_SERVER_NUMBER_OPTION_H_
