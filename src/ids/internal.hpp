// Private helpers shared by the ids sources; not part of the module's contract.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace evo::ids::internal {

// Crockford's base32 alphabet: no I, L, O, U, so it reads aloud and sorts like the number.
inline constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// The value of a Crockford character (case-insensitive, I/L -> 1, O -> 0), or -1.
int CrockfordValue(char c);

// Whole seconds, rounded up, at least 1: the value of a Retry-After hint for a wait `d`.
int64_t RetryAfterSeconds(std::chrono::nanoseconds d);

// `text` shortened for an error message: hostile input can be kilobytes long.
std::string Excerpt(std::string_view text);

}  // namespace evo::ids::internal
