// API keys: long-lived bearer credentials that `evo keys create` (or POST /v1/keys) makes and
// the HTTP layer verifies on every request.
//
// A key reads
//
//   evo_key_<16 hex: the key id>_<43 base64url chars: 32 random bytes from RAND_bytes>
//
// 68 characters in all, so that secret scanners can match it exactly
// (`evo_key_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`). The id ("key_<16 hex>") is not secret: it names
// the key in lists, logs and `evo keys revoke`. The secret part is shown once, by Create, and
// stored only as its SHA-256 hash.
//
// Keys live in the server's database (store module, tables `auth_keys` and
// `auth_key_generation`, migrations of store module "auth_keys"), so that the `evo keys` commands,
// run beside a server, and the server see the same keys. Verify reads an in-memory snapshot of the
// table and never touches the disk; Refresh reloads that snapshot when the table changed (one cheap
// query otherwise). A server calls Refresh at least once a second, so a revocation made by another
// process takes effect within a second.
//
// No Status message and no KeyInfo ever holds a secret or its hash; Verify's reasons never
// echo the token.
//
// Thread safety: a KeyStore may be shared by any number of threads; Verify runs concurrently
// with everything else, including Refresh.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/status.hpp"
#include "store/store.hpp"

namespace evo::auth {

// What a key is, without its secret: what List and Get return.
struct KeyInfo {
  std::string id;                          // "key_" + 16 lowercase hex digits
  std::string name;                        // what the creator called it
  std::vector<std::string> scopes;         // sorted, without duplicates
  std::optional<std::string> application;  // the one webhooks application it may touch
  Clock::WallTime created_at;
  std::optional<Clock::WallTime> expires_at;  // unset: never expires
  std::optional<Clock::WallTime> revoked_at;  // unset: not revoked
  std::string hint;                           // the last 4 characters of the key
};

// What Create is asked for.
struct KeySpec {
  std::string name;  // REQUIRES: 1..128 bytes, no control characters
  // Validated with ParseScopes (at least one, each MODULE:read|write or admin).
  std::vector<std::string> scopes;
  // Lifetime from creation; unset: never expires. REQUIRES: > 0 and at most 100 years.
  std::optional<std::chrono::seconds> expires_in;
  // Limits the key to one webhooks application. REQUIRES: 1..128 bytes of [A-Za-z0-9_.:-].
  std::optional<std::string> application;
};

// A new key: its record and the key itself, which exists nowhere else.
struct CreatedKey {
  KeyInfo info;
  std::string key;  // the whole bearer token, "evo_key_..."; show it once, never log it
};

// True when `token` has the prefix of an API key ("evo_"), so that a caller can tell keys
// from JWTs before verifying either; says nothing about whether it is valid.
bool LooksLikeApiKey(std::string_view token);

// A key's lifetime as a user writes it (`--expires 30d`): a positive whole number followed by
// s, m, h, d or w (seconds, minutes, hours, days, weeks), at most 100 years. InvalidArgument
// otherwise.
StatusOr<std::chrono::seconds> ParseLifetime(std::string_view text);

class KeyStore {
 public:
  // Brings the "auth_keys" schema up to date and loads the snapshot. `db` and `clock` must
  // outlive the store; `clock` decides expiry. Errors: those of store::Database (e.g.
  // FailedPrecondition for a schema newer than this code).
  static StatusOr<std::unique_ptr<KeyStore>> Open(store::Database& db, const Clock& clock);

  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;
  ~KeyStore();

  // Makes a key. InvalidArgument naming the field for a bad spec (a bad scope is named; the
  // name and application are not echoed). The new key verifies at once in this store; other
  // stores on the same database see it after their next Refresh.
  StatusOr<CreatedKey> Create(const KeySpec& spec);

  // Every key, revoked and expired ones included, oldest first. Read from the database.
  StatusOr<std::vector<KeyInfo>> List();

  // One key by id; NotFound when there is no such key.
  StatusOr<KeyInfo> Get(std::string_view id);

  // Revokes a key for good and returns its record. Idempotent: revoking a revoked key
  // returns OK and keeps the first revocation time. NotFound for an unknown id. Takes
  // effect at once in this store and at the next Refresh elsewhere.
  StatusOr<KeyInfo> Revoke(std::string_view id);

  // The principal a bearer token acts as: kind kApiKey, subject = the key id, the key's
  // scopes and application. Unauthenticated with a short reason that never holds the token:
  //   "malformed API key"          not of the form above (any length, any bytes)
  //   "unknown API key"            no key with that id in the snapshot
  //   "wrong API key"              the secret does not match (compared in constant time)
  //   "API key expired"            at or past its expiry, by the store's clock
  //   "API key revoked"
  // The secret is checked before revocation and expiry, so only the key's holder learns
  // those. Internal (no token in it) only if libcrypto itself fails. Reads only the
  // in-memory snapshot: no I/O, writes nothing (no last-used time), no lock held while
  // hashing; about 0.7 us (build/bench/auth_benchmark).
  StatusOr<Principal> Verify(std::string_view token) const;

  // Reloads the snapshot when the keys table changed since the last load (by any process,
  // or by direct SQL: triggers count every change); otherwise one small query (a few us).
  // A server calls it at least once a second, from a timer of its own. Errors: those of
  // store::Database; the old snapshot stays in use then.
  Status Refresh();

 private:
  struct Snapshot;
  KeyStore(store::Database& db, const Clock& clock);
  std::shared_ptr<const Snapshot> Current() const;
  StatusOr<KeyInfo> GetFrom(store::Executor& ex, std::string_view id);

  store::Database& db_;
  const Clock& clock_;
  // Guards snapshot_, the pointer (a snapshot itself is immutable once published).
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const Snapshot> snapshot_;  // never null after Open
  // One Refresh at a time, so that an older snapshot never replaces a newer one.
  std::mutex refresh_mu_;
};

}  // namespace evo::auth
