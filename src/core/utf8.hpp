// UTF-8 well-formedness (RFC 3629): the one check the HTTP layer applies to requests and the
// spam module to the text it normalises. Header-only callers need nothing else; no state.
#pragma once

#include <cstddef>
#include <string_view>

namespace evo::utf8 {

// The length (1..4) of the well-formed UTF-8 sequence that starts at `s[i]`, or 0 if none
// does: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
// truncated sequence, no lone continuation byte. REQUIRES: i < s.size().
size_t SequenceLength(std::string_view s, size_t i);

// True when all of `s` is well-formed UTF-8 (see SequenceLength).
bool IsValid(std::string_view s);

}  // namespace evo::utf8
