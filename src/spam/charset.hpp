// Charsets and Unicode normalisation of the spam module: whatever bytes a message arrives as
// (raw file bytes in any charset, or JSON text a client decoded from them), the tokeniser sees
// the same UTF-8 text in NFC. Private to the module (message.cpp and the tests use it).
//
// The rules, applied by ParseMessage (message.hpp) to every path in:
//   - Text in a declared charset is decoded by it: windows-1252 and iso-8859-1 (both read as
//     windows-1252, as browsers do) by a table, every other charset glibc's iconv knows
//     (koi8-r, iso-8859-x, gb2312 (read as GB18030), shift_jis, big5, euc-kr, utf-16...)
//     through iconv. A byte iconv refuses, an unknown charset and undeclared text fall back
//     to the next rule.
//   - Bytes that are not valid UTF-8 are read as windows-1252, byte by byte: valid UTF-8
//     sequences around them are kept, so all-ASCII and valid UTF-8 text is unchanged.
//   - C1 controls (U+0080..U+009F), which no mail means, are read as the windows-1252
//     characters of the same byte value: what a client produces that decoded windows-1252
//     bytes as Latin-1 ("\u0092" for a right quote).
//   - The result is put in Unicode Normalization Form C (libunistring), so "e" + U+0301 and
//     U+00E9 are the same token.
//
// Thread safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace evo::spam {

// Appends code point `cp` (REQUIRES: <= U+10FFFF) to `out` as UTF-8.
void AppendUtf8(uint32_t cp, std::string* out);

// The code point of `byte` read as windows-1252 (the five unassigned bytes map to the C1
// control of the same value).
uint32_t FromCp1252(uint8_t byte);

// True if `s` holds a byte >= 0x80.
bool HasHighBytes(std::string_view s);

// True for the names of iso-8859-1 and windows-1252 (any case; an RFC 2231 "*language" suffix
// is ignored).
bool IsWindows1252(std::string_view charset);

// True for charsets whose text is not ASCII where it looks like ASCII (utf-16, utf-32, utf-7,
// iso-2022-*, hz): their bytes must always be decoded, even without bytes >= 0x80.
bool IsAsciiIncompatible(std::string_view charset);

// Appends `bytes`, labelled `charset` (a MIME charset name, any case; "" for none), to `out`
// as UTF-8 by the rules above (without the NFC step). The output is always valid UTF-8.
void AppendInCharset(std::string_view bytes, std::string_view charset, std::string* out);

// Appends `bytes` to `out`, keeping valid UTF-8 sequences and reading every other byte as
// windows-1252. The output is always valid UTF-8.
void AppendRepairedUtf8(std::string_view bytes, std::string* out);

// If `text` is valid UTF-8 that holds a non-ASCII character and no code point above U+00FF,
// stores in `*bytes` the bytes a Latin-1 decoder turned into it (each code point as one byte)
// and returns true; otherwise returns false. This is how ParseMessage undoes what a JSON
// client does that decodes a file of unknown charset as Latin-1, so that the bytes, and so
// declared charsets, count again. The price: text typed as Latin-1 characters that happen to
// spell UTF-8 ("Ã©") is read as that UTF-8 ("é").
bool UndoLatin1(std::string_view text, std::string* bytes);

// Makes `text` valid UTF-8 (invalid bytes as windows-1252), replaces C1 controls by their
// windows-1252 characters and puts it in NFC. All-ASCII text is left as it is, at the cost of
// one scan.
void NormalizeText(std::string* text);

}  // namespace evo::spam
