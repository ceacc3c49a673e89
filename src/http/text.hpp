// Private text helpers of the http module: percent-decoding, UTF-8 validation, header
// value checks. Not part of the module's contract.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace evo::http::internal {

// Percent-decodes `in`. With `plus_as_space` (query strings) '+' becomes ' '. Returns nullopt
// when a '%' is not followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view in, bool plus_as_space);

// True when `text` holds a C0 control character (including NUL) or DEL.
bool HasControlChars(std::string_view text);

// ASCII case-insensitive equality.
bool IEquals(std::string_view a, std::string_view b);

// `text` without leading and trailing spaces and tabs.
std::string_view TrimOws(std::string_view text);

// True when `name` is a non-empty RFC 9110 token (a valid header field name).
bool IsToken(std::string_view name);

// True when `value` may be sent as a header field value: no CR, LF, NUL or other controls
// except horizontal tab.
bool IsFieldValue(std::string_view value);

// True when every character of `text` is a lower-case hex digit.
bool IsLowerHex(std::string_view text);

}  // namespace evo::http::internal
