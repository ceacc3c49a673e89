// Signing and verifying webhooks the Standard Webhooks way (https://www.standardwebhooks.com,
// spec/standard-webhooks.md in github.com/standard-webhooks/standard-webhooks, version 1.0.0).
//
// A webhook carries three headers beside its body:
//
//   webhook-id          the message id, the same on every retry of a message;
//   webhook-timestamp   the attempt time in whole Unix seconds (a retry gets a new one);
//   webhook-signature   one or more "<version>,<base64 signature>" entries separated by a
//                       space, each over the bytes "<id>.<timestamp>.<body>".
//
// Two schemes, told apart by the version of a signature and the prefix of a key:
//
//   v1    HMAC-SHA256 with a shared secret "whsec_<base64 of 24..64 random bytes>".
//   v1a   ed25519 with a key pair: the signing key "whsk_<base64 of the 32-byte seed>" (the
//         form the reference Go library reads) and the public key "whpk_<base64 of 32 bytes>".
//
// Rotation: a sender signs with every key in rotation (old and new) and sends all signatures;
// a receiver accepts a message when any signature matches any key it trusts.
//
// Keys are secrets: no function here puts a key, or a signature it computed, into a Status
// message. Key strings are held in std::string and are not wiped from memory.
//
// Crypto is OpenSSL's libcrypto (HMAC, EVP_PKEY_ED25519, RAND_bytes, CRYPTO_memcmp). If
// libcrypto itself fails (out of memory, a broken random source), the functions that return a
// plain value, and Verify, abort the process with a message on stderr: there is nothing a
// caller could do instead, and a webhook signed with a weak or empty key must never be sent.
// Functions that return a StatusOr report such failures as Internal where they can.
//
// Thread safety: every function here is stateless and may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace evo::webhooks {

// ---- Headers and prefixes ----------------------------------------------------------------

// Header names, lower case as in the spec (HTTP header names are case-insensitive).
inline constexpr std::string_view kWebhookIdHeader = "webhook-id";
inline constexpr std::string_view kWebhookTimestampHeader = "webhook-timestamp";
inline constexpr std::string_view kWebhookSignatureHeader = "webhook-signature";

// Prefixes that tell the kind of a serialised key.
inline constexpr std::string_view kSecretPrefix = "whsec_";     // v1 shared secret
inline constexpr std::string_view kSigningKeyPrefix = "whsk_";  // v1a ed25519 signing key
inline constexpr std::string_view kPublicKeyPrefix = "whpk_";   // v1a ed25519 public key

// Signature versions, the part before the comma of a signature.
inline constexpr std::string_view kVersionV1 = "v1";
inline constexpr std::string_view kVersionV1a = "v1a";

// The maximum distance between a webhook's timestamp and the receiver's clock, both ways,
// that the spec's reference libraries accept.
inline constexpr int64_t kDefaultToleranceSeconds = 300;

// Bounds on the decoded length of a v1 secret, from the spec (192 to 512 bits).
inline constexpr size_t kMinSecretBytes = 24;
inline constexpr size_t kMaxSecretBytes = 64;

// ---- Symmetric (v1) ----------------------------------------------------------------------

// A new random v1 secret: "whsec_" + base64 of 32 bytes from RAND_bytes. Does not fail (see
// the top of this file).
std::string GenerateSecret();

// The raw key bytes of a v1 secret. The "whsec_" prefix is optional, as in the reference
// libraries (a secret without a prefix is read as base64 alone). Base64 is the standard
// alphabet with padding, nothing else (no whitespace, no URL-safe alphabet).
// Returns InvalidArgument when the text is not such base64, when it carries a "whsk_" or
// "whpk_" prefix (an ed25519 key), or when the key decodes to fewer than kMinSecretBytes or
// more than kMaxSecretBytes bytes.
StatusOr<std::string> DecodeSecret(std::string_view secret);

// The v1 signature "v1,<base64(HMAC-SHA256(raw_key, msg_id.timestamp_s.body))>".
// `raw_key` is what DecodeSecret returned. Does not fail.
// REQUIRES: timestamp_s >= 0; msg_id contains no '.' (otherwise the id and the timestamp
// could be shifted against each other, which the spec warns about) and is not empty.
std::string SignV1(std::string_view raw_key, std::string_view msg_id, int64_t timestamp_s,
                   std::string_view body);

// ---- Asymmetric (v1a, ed25519) -----------------------------------------------------------

// A v1a key pair in its serialised form. Hand `public_key` to receivers; keep `signing_key`
// on the sender only.
struct Ed25519KeyPair {
  std::string signing_key;  // "whsk_" + base64 of the 32-byte seed
  std::string public_key;   // "whpk_" + base64 of the 32-byte public key
};

// A new key pair from a 32-byte RAND_bytes seed. Does not fail (see the top of this file).
Ed25519KeyPair GenerateEd25519KeyPair();

// The 32-byte seed of a v1a signing key; the "whsk_" prefix is optional.
// Returns InvalidArgument for bad base64, a "whsec_"/"whpk_" prefix, or a length other than
// 32 bytes (64-byte seed-and-public-key forms such as libsodium's are not read: pass their
// first 32 bytes).
StatusOr<std::string> DecodeSigningKey(std::string_view signing_key);

// The 32-byte public key of a v1a public key; the "whpk_" prefix is optional.
// Returns InvalidArgument for bad base64, a "whsec_"/"whsk_" prefix, or a length other than 32
// bytes. (32 bytes that are not a point on the curve are not detected here; no signature
// verifies against them.)
StatusOr<std::string> DecodePublicKey(std::string_view public_key);

// The serialised public key ("whpk_...") that belongs to a serialised signing key.
// Returns what DecodeSigningKey returns on a bad key.
StatusOr<std::string> PublicKeyFor(std::string_view signing_key);

// The v1a signature "v1a,<base64(ed25519(seed, msg_id.timestamp_s.body))>" (64 signature
// bytes). `seed` is what DecodeSigningKey returned. Same REQUIRES as SignV1.
// Returns InvalidArgument when `seed` is not 32 bytes; Internal if libcrypto fails.
StatusOr<std::string> SignV1a(std::string_view seed, std::string_view msg_id, int64_t timestamp_s,
                              std::string_view body);

// ---- Headers -----------------------------------------------------------------------------

// The value of the webhook-signature header: one signature per key, in the order given,
// separated by a single space. Each key is a serialised v1 secret ("whsec_..." or bare
// base64, signed with v1) or a v1a signing key ("whsk_...", signed with v1a); during a
// rotation pass both the old and the new key. Same REQUIRES as SignV1.
// Returns InvalidArgument when `keys` is empty or a key does not decode (the message names
// the index of the key, never its text); Internal if libcrypto fails.
StatusOr<std::string> SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                                      int64_t timestamp_s, std::string_view body);

// Checks a received webhook against the keys the receiver trusts.
//
// `keys` are serialised keys: a v1 secret ("whsec_..." or bare base64) checks v1 signatures;
// a v1a public key ("whpk_...") checks v1a signatures; a v1a signing key ("whsk_...") is
// also accepted and checks v1a signatures with its public key (handy for a sender checking
// its own output; receivers should hold only public keys). A secret never accepts a v1a
// signature and a public key never accepts a v1 signature.
//
// The header values are taken as received (`timestamp_header` and `signature_header` are the
// raw values of webhook-timestamp and webhook-signature); `body` is the raw body bytes, not a
// re-serialisation of parsed JSON. The message is accepted when
//   - msg_id is not empty,
//   - timestamp_header is a non-negative decimal integer without sign, leading zeros or
//     spaces, and |now_s - timestamp| <= tolerance_s,
//   - some entry of signature_header (split on spaces; empty entries, entries without a
//     comma and unknown versions such as "v2" are skipped, as the spec's forward
//     compatibility requires) matches some key. v1 signatures are compared in constant time
//     (CRYPTO_memcmp).
//
// Returns OK when accepted. Returns InvalidArgument for the receiver's own mistakes: `keys`
// empty, a key that does not decode (named by index), tolerance_s < 0. Otherwise returns
// Unauthenticated with the reason, checked in this order:
//   "malformed webhook-id: ...", "malformed webhook-timestamp: ...",
//   "webhook-timestamp too old: ..." / "webhook-timestamp too new: ...",
//   "malformed webhook-signature: ..." (empty, or no entry of the form version,signature),
//   "no matching signature: ...".
// The timestamp is checked before any signature, so a stale replay costs no crypto.
Status Verify(const std::vector<std::string>& keys, std::string_view msg_id,
              std::string_view timestamp_header, std::string_view signature_header,
              std::string_view body, int64_t now_s, int64_t tolerance_s = kDefaultToleranceSeconds);

}  // namespace evo::webhooks
