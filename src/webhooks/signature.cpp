// Standard Webhooks signatures over libcrypto.
#include "webhooks/signature.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace evo::webhooks {
namespace {

constexpr size_t kEd25519KeyBytes = 32;
constexpr size_t kEd25519SignatureBytes = 64;
constexpr size_t kHmacSha256Bytes = 32;
constexpr size_t kGeneratedSecretBytes = 32;

[[noreturn]] void DieOnCryptoFailure(const char* what) {
  std::fprintf(stderr, "evo::webhooks: libcrypto failed in %s: %s\n", what,
               ERR_error_string(ERR_get_error(), nullptr));
  std::abort();
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---- Base64 (standard alphabet, padded) ----

std::string Base64Encode(std::string_view in) {
  if (in.empty()) {
    return "";
  }
  // EVP_EncodeBlock writes 4 characters per 3 bytes (rounded up) and a terminating NUL.
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(in),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

// Decodes padded standard base64 and nothing else: EVP_DecodeBlock would skip whitespace
// and keep the padding as zero bytes. Like Go's base64.StdEncoding (which the reference
// library uses), non-zero bits after the last full byte are ignored.
std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) {
    return std::nullopt;
  }
  size_t padding = 0;
  if (!in.empty() && in.back() == '=') {
    padding = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - padding; ++i) {
    const int v = Base64Value(in[i]);
    if (v < 0) {
      return std::nullopt;  // includes a '=' before the padding
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// ---- Keys ----

// Strips `prefix` when present. A string carrying one of the *other* two prefixes is a key of
// the wrong kind; saying so beats "not valid base64" ('_' is outside the alphabet).
StatusOr<std::string> DecodeKey(std::string_view key, std::string_view prefix,
                                std::string_view what) {
  for (std::string_view other : {kSecretPrefix, kSigningKeyPrefix, kPublicKeyPrefix}) {
    if (other != prefix && key.starts_with(other)) {
      return InvalidArgumentError(std::string(what) + " has the prefix " + std::string(other) +
                                  ", which marks a different kind of key");
    }
  }
  if (key.starts_with(prefix)) {
    key.remove_prefix(prefix.size());
  }
  std::optional<std::string> raw = Base64Decode(key);
  if (!raw) {
    return InvalidArgumentError(std::string(what) + " is not valid base64");
  }
  return *std::move(raw);
}

PkeyPtr PrivateKeyFromSeed(std::string_view seed) {
  return PkeyPtr(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, Bytes(seed), seed.size()));
}

PkeyPtr PublicKeyFromBytes(std::string_view public_key) {
  return PkeyPtr(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(public_key), public_key.size()));
}

std::optional<std::string> RawPublicKey(EVP_PKEY* pkey) {
  std::string out(kEd25519KeyBytes, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != kEd25519KeyBytes) {
    return std::nullopt;
  }
  return out;
}

// ---- Signing ----

// "<msg_id>.<timestamp>.<body>", the bytes every signature covers.
std::string SignedContent(std::string_view msg_id, std::string_view timestamp,
                          std::string_view body) {
  std::string content;
  content.reserve(msg_id.size() + timestamp.size() + body.size() + 2);
  content.append(msg_id).append(".").append(timestamp).append(".").append(body);
  return content;
}

std::array<unsigned char, kHmacSha256Bytes> HmacSha256(std::string_view key,
                                                       std::string_view content) {
  std::array<unsigned char, kHmacSha256Bytes> mac{};
  unsigned int len = 0;
  // HMAC() treats a null key as "no key given"; an empty key must stay an empty key.
  static constexpr unsigned char kEmptyKey = 0;
  const unsigned char* key_bytes = key.empty() ? &kEmptyKey : Bytes(key);
  if (HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()), Bytes(content), content.size(),
           mac.data(), &len) == nullptr ||
      len != mac.size()) {
    DieOnCryptoFailure("HMAC-SHA256");
  }
  return mac;
}

StatusOr<std::string> Ed25519Sign(EVP_PKEY* pkey, std::string_view content) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(kEd25519SignatureBytes, '\0');
  size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, Bytes(content),
                     content.size()) != 1 ||
      len != kEd25519SignatureBytes) {
    ERR_clear_error();
    return InternalError("ed25519 signing failed in libcrypto");
  }
  return sig;
}

bool Ed25519Verify(EVP_PKEY* pkey, std::string_view content, std::string_view sig) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx.get(), Bytes(sig), sig.size(), Bytes(content), content.size()) == 1;
  // A failed verification leaves an error on the thread's queue; it is not news to anyone.
  ERR_clear_error();
  return ok;
}

// ---- Verification ----

// A trusted key, decoded once per Verify call.
struct TrustedKey {
  bool symmetric = false;
  std::string hmac_key;  // symmetric
  PkeyPtr ed25519;       // !symmetric: a public key, or a private key (which holds its public)
};

StatusOr<std::vector<TrustedKey>> DecodeTrustedKeys(const std::vector<std::string>& keys) {
  if (keys.empty()) {
    return InvalidArgumentError("no keys to verify webhooks with");
  }
  std::vector<TrustedKey> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string name = "keys[" + std::to_string(i) + "]";
    TrustedKey trusted;
    if (keys[i].starts_with(kPublicKeyPrefix)) {
      StatusOr<std::string> raw = DecodePublicKey(keys[i]);
      if (!raw.ok()) {
        return InvalidArgumentError(name + ": " + std::string(raw.status().message()));
      }
      trusted.ed25519 = PublicKeyFromBytes(*raw);
    } else if (keys[i].starts_with(kSigningKeyPrefix)) {
      StatusOr<std::string> seed = DecodeSigningKey(keys[i]);
      if (!seed.ok()) {
        return InvalidArgumentError(name + ": " + std::string(seed.status().message()));
      }
      trusted.ed25519 = PrivateKeyFromSeed(*seed);
    } else {
      StatusOr<std::string> raw = DecodeSecret(keys[i]);
      if (!raw.ok()) {
        return InvalidArgumentError(name + ": " + std::string(raw.status().message()));
      }
      trusted.symmetric = true;
      trusted.hmac_key = *std::move(raw);
    }
    if (!trusted.symmetric && !trusted.ed25519) {
      DieOnCryptoFailure("EVP_PKEY_new_raw_*_key");
    }
    out.push_back(std::move(trusted));
  }
  return out;
}

// Parses webhook-timestamp in its only canonical form, so that the signed text (which uses
// the header as sent) and the number we check agree.
std::optional<int64_t> ParseTimestamp(std::string_view s) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;  // out of range
  }
  return value;
}

// b - a for a <= b, computed in uint64_t where the true difference of any two int64_t fits
// and nothing overflows.
uint64_t Distance(int64_t a, int64_t b) {
  return static_cast<uint64_t>(b) - static_cast<uint64_t>(a);
}

}  // namespace

// ---- Public functions ----

std::string GenerateSecret() {
  std::array<unsigned char, kGeneratedSecretBytes> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    DieOnCryptoFailure("RAND_bytes");
  }
  std::string out = std::string(kSecretPrefix) +
                    Base64Encode(std::string_view(reinterpret_cast<char*>(key.data()), key.size()));
  OPENSSL_cleanse(key.data(), key.size());
  return out;
}

StatusOr<std::string> DecodeSecret(std::string_view secret) {
  EVO_ASSIGN_OR_RETURN(std::string raw, DecodeKey(secret, kSecretPrefix, "webhook secret"));
  if (raw.size() < kMinSecretBytes || raw.size() > kMaxSecretBytes) {
    return InvalidArgumentError("webhook secret decodes to " + std::to_string(raw.size()) +
                                " bytes; the spec requires " + std::to_string(kMinSecretBytes) +
                                " to " + std::to_string(kMaxSecretBytes));
  }
  return raw;
}

std::string SignV1(std::string_view raw_key, std::string_view msg_id, int64_t timestamp_s,
                   std::string_view body) {
  const auto mac = HmacSha256(raw_key, SignedContent(msg_id, std::to_string(timestamp_s), body));
  return std::string(kVersionV1) + "," +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
}

Ed25519KeyPair GenerateEd25519KeyPair() {
  std::array<unsigned char, kEd25519KeyBytes> seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    DieOnCryptoFailure("RAND_bytes");
  }
  const std::string_view seed_view(reinterpret_cast<char*>(seed.data()), seed.size());
  PkeyPtr pkey = PrivateKeyFromSeed(seed_view);
  std::optional<std::string> public_key = pkey ? RawPublicKey(pkey.get()) : std::nullopt;
  if (!public_key) {
    DieOnCryptoFailure("ed25519 key generation");
  }
  Ed25519KeyPair pair{std::string(kSigningKeyPrefix) + Base64Encode(seed_view),
                      std::string(kPublicKeyPrefix) + Base64Encode(*public_key)};
  OPENSSL_cleanse(seed.data(), seed.size());
  return pair;
}

StatusOr<std::string> DecodeSigningKey(std::string_view signing_key) {
  EVO_ASSIGN_OR_RETURN(std::string seed,
                       DecodeKey(signing_key, kSigningKeyPrefix, "ed25519 signing key"));
  if (seed.size() != kEd25519KeyBytes) {
    return InvalidArgumentError("ed25519 signing key decodes to " + std::to_string(seed.size()) +
                                " bytes; expected a 32-byte seed");
  }
  return seed;
}

StatusOr<std::string> DecodePublicKey(std::string_view public_key) {
  EVO_ASSIGN_OR_RETURN(std::string raw,
                       DecodeKey(public_key, kPublicKeyPrefix, "ed25519 public key"));
  if (raw.size() != kEd25519KeyBytes) {
    return InvalidArgumentError("ed25519 public key decodes to " + std::to_string(raw.size()) +
                                " bytes; expected 32");
  }
  return raw;
}

StatusOr<std::string> PublicKeyFor(std::string_view signing_key) {
  EVO_ASSIGN_OR_RETURN(std::string seed, DecodeSigningKey(signing_key));
  PkeyPtr pkey = PrivateKeyFromSeed(seed);
  std::optional<std::string> public_key = pkey ? RawPublicKey(pkey.get()) : std::nullopt;
  if (!public_key) {
    ERR_clear_error();
    return InternalError("deriving the ed25519 public key failed in libcrypto");
  }
  return std::string(kPublicKeyPrefix) + Base64Encode(*public_key);
}

StatusOr<std::string> SignV1a(std::string_view seed, std::string_view msg_id, int64_t timestamp_s,
                              std::string_view body) {
  if (seed.size() != kEd25519KeyBytes) {
    return InvalidArgumentError("ed25519 seed must be 32 bytes, got " +
                                std::to_string(seed.size()));
  }
  PkeyPtr pkey = PrivateKeyFromSeed(seed);
  if (!pkey) {
    ERR_clear_error();
    return InternalError("loading the ed25519 key failed in libcrypto");
  }
  EVO_ASSIGN_OR_RETURN(
      std::string sig,
      Ed25519Sign(pkey.get(), SignedContent(msg_id, std::to_string(timestamp_s), body)));
  return std::string(kVersionV1a) + "," + Base64Encode(sig);
}

StatusOr<std::string> SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                                      int64_t timestamp_s, std::string_view body) {
  if (keys.empty()) {
    return InvalidArgumentError("no keys to sign the webhook with");
  }
  std::string header;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string name = "keys[" + std::to_string(i) + "]";
    std::string signature;
    if (keys[i].starts_with(kSigningKeyPrefix)) {
      StatusOr<std::string> seed = DecodeSigningKey(keys[i]);
      if (!seed.ok()) {
        return InvalidArgumentError(name + ": " + std::string(seed.status().message()));
      }
      EVO_ASSIGN_OR_RETURN(signature, SignV1a(*seed, msg_id, timestamp_s, body));
    } else {
      StatusOr<std::string> raw = DecodeSecret(keys[i]);
      if (!raw.ok()) {
        return InvalidArgumentError(name + ": " + std::string(raw.status().message()));
      }
      signature = SignV1(*raw, msg_id, timestamp_s, body);
    }
    if (!header.empty()) {
      header.push_back(' ');
    }
    header.append(signature);
  }
  return header;
}

Status Verify(const std::vector<std::string>& keys, std::string_view msg_id,
              std::string_view timestamp_header, std::string_view signature_header,
              std::string_view body, int64_t now_s, int64_t tolerance_s) {
  if (tolerance_s < 0) {
    return InvalidArgumentError("tolerance_s must not be negative");
  }
  EVO_ASSIGN_OR_RETURN(std::vector<TrustedKey> trusted, DecodeTrustedKeys(keys));

  if (msg_id.empty()) {
    return UnauthenticatedError("malformed webhook-id: empty");
  }
  const std::optional<int64_t> timestamp = ParseTimestamp(timestamp_header);
  if (!timestamp) {
    return UnauthenticatedError(
        "malformed webhook-timestamp: expected whole Unix seconds as a plain decimal number");
  }
  if (*timestamp < now_s) {
    const uint64_t age = Distance(*timestamp, now_s);
    if (age > static_cast<uint64_t>(tolerance_s)) {
      return UnauthenticatedError("webhook-timestamp too old: " + std::to_string(age) +
                                  " s before now, tolerance " + std::to_string(tolerance_s) + " s");
    }
  } else {
    const uint64_t lead = Distance(now_s, *timestamp);
    if (lead > static_cast<uint64_t>(tolerance_s)) {
      return UnauthenticatedError("webhook-timestamp too new: " + std::to_string(lead) +
                                  " s after now, tolerance " + std::to_string(tolerance_s) + " s");
    }
  }

  // Split the header first so that a malformed one is reported as such, whatever the keys.
  struct Entry {
    std::string_view version;
    std::string_view signature;
  };
  std::vector<Entry> entries;
  for (size_t start = 0; start <= signature_header.size();) {
    size_t end = signature_header.find(' ', start);
    if (end == std::string_view::npos) {
      end = signature_header.size();
    }
    const std::string_view token = signature_header.substr(start, end - start);
    start = end + 1;
    const size_t comma = token.find(',');
    if (comma == std::string_view::npos || comma == 0 || comma + 1 == token.size()) {
      continue;
    }
    entries.push_back({token.substr(0, comma), token.substr(comma + 1)});
  }
  if (entries.empty()) {
    return UnauthenticatedError(signature_header.empty()
                                    ? "malformed webhook-signature: empty"
                                    : "malformed webhook-signature: no entry of the form "
                                      "<version>,<base64 signature>");
  }

  // The signed text uses the timestamp header as sent, which ParseTimestamp made sure is the
  // decimal form of *timestamp.
  const std::string content = SignedContent(msg_id, timestamp_header, body);

  size_t v1_seen = 0;
  size_t v1a_seen = 0;
  std::vector<std::optional<std::array<unsigned char, kHmacSha256Bytes>>> macs(trusted.size());
  for (const Entry& entry : entries) {
    const bool is_v1 = entry.version == kVersionV1;
    const bool is_v1a = entry.version == kVersionV1a;
    if (!is_v1 && !is_v1a) {
      continue;
    }
    (is_v1 ? v1_seen : v1a_seen)++;
    const std::optional<std::string> sig = Base64Decode(entry.signature);
    if (!sig) {
      continue;
    }
    for (size_t k = 0; k < trusted.size(); ++k) {
      const TrustedKey& key = trusted[k];
      if (is_v1 && key.symmetric && sig->size() == kHmacSha256Bytes) {
        if (!macs[k]) {
          macs[k] = HmacSha256(key.hmac_key, content);
        }
        if (CRYPTO_memcmp(macs[k]->data(), sig->data(), kHmacSha256Bytes) == 0) {
          return OkStatus();
        }
      } else if (is_v1a && !key.symmetric && sig->size() == kEd25519SignatureBytes) {
        if (Ed25519Verify(key.ed25519.get(), content, *sig)) {
          return OkStatus();
        }
      }
    }
  }
  return UnauthenticatedError("no matching signature: checked " + std::to_string(v1_seen) +
                              " v1 and " + std::to_string(v1a_seen) + " v1a signature(s) against " +
                              std::to_string(trusted.size()) + " key(s)");
}

}  // namespace evo::webhooks
