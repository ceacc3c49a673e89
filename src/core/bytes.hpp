// Little-endian framing of integers and doubles in byte strings: the shared vocabulary of the
// modules' binary serialisers (spam models, bandit policies). Header-only.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

namespace evo::bytes {

inline void PutU64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  out.append(b, 8);
}

inline void PutF64(std::string& out, double v) { PutU64(out, std::bit_cast<uint64_t>(v)); }

// Reads 8 bytes from the front of `in` (advancing it); false when fewer remain.
inline bool GetU64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) {
    return false;
  }
  v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  in.remove_prefix(8);
  return true;
}

inline bool GetF64(std::string_view& in, double& v) {
  uint64_t u = 0;
  if (!GetU64(in, u)) {
    return false;
  }
  v = std::bit_cast<double>(u);
  return true;
}

}  // namespace evo::bytes
