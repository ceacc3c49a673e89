#include "auth/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/utf8.hpp"

namespace evo::auth {
namespace {

// Its own migration module, so that other parts of auth may keep tables without sharing a
// version sequence with the keys.
constexpr std::string_view kMigrationModule = "auth_keys";
constexpr std::string_view kTokenPrefix = "evo_";
constexpr std::string_view kIdPrefix = "key_";
constexpr size_t kIdHexChars = 16;
constexpr size_t kIdChars = 4 + kIdHexChars;  // "key_" + hex
constexpr size_t kSecretBytes = 32;
constexpr size_t kSecretChars = 43;  // base64url of 32 bytes, unpadded
constexpr size_t kTokenChars = 4 + kIdChars + 1 + kSecretChars;
constexpr size_t kHashBytes = 32;
constexpr size_t kHintChars = 4;
constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxApplicationBytes = 128;
constexpr std::chrono::seconds kMaxLifetime{100LL * 366 * 24 * 3600};

using Hash = std::array<unsigned char, kHashBytes>;

// Lets Verify look an id up by string_view, without allocating a string per request.
struct IdHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The table's generation counter is bumped by triggers, so that a change made by any writer
// (this code in another process, or an operator's sqlite3 shell) makes Refresh reload.
// PRAGMA data_version would not do: it is per connection, and the store pools connections.
const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {{1, R"sql(
CREATE TABLE auth_keys(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  application TEXT,
  secret_sha256 BLOB NOT NULL,
  hint TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER,
  revoked_ms INTEGER);
CREATE TABLE auth_key_generation(
  one INTEGER PRIMARY KEY CHECK (one = 1),
  generation INTEGER NOT NULL);
INSERT INTO auth_key_generation(one, generation) VALUES(1, 0);
CREATE TRIGGER auth_keys_inserted AFTER INSERT ON auth_keys BEGIN
  UPDATE auth_key_generation SET generation = generation + 1;
END;
CREATE TRIGGER auth_keys_updated AFTER UPDATE ON auth_keys BEGIN
  UPDATE auth_key_generation SET generation = generation + 1;
END;
CREATE TRIGGER auth_keys_deleted AFTER DELETE ON auth_keys BEGIN
  UPDATE auth_key_generation SET generation = generation + 1;
END;
)sql"}};
  return migrations;
}

constexpr std::string_view kInfoColumns =
    "id, name, scopes, application, created_ms, expires_ms, revoked_ms, hint";

int64_t ToMs(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Clock::WallTime FromMs(int64_t ms) {
  return Clock::WallTime(
      std::chrono::duration_cast<Clock::WallTime::duration>(std::chrono::milliseconds(ms)));
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsBase64Url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsKeyId(std::string_view id) {
  return id.size() == kIdChars && id.substr(0, kIdPrefix.size()) == kIdPrefix &&
         std::all_of(id.begin() + static_cast<ptrdiff_t>(kIdPrefix.size()), id.end(), IsLowerHex);
}

std::string Base64Url(const unsigned char* data, size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{data[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

// The secret part is 256 bits from RAND_bytes, so a single unsalted SHA-256 is enough: there
// is nothing to guess that a slow, salted hash would protect (unlike a password).
bool Sha256(std::string_view secret, Hash& out) {
  // Fetched once: OpenSSL 3 looks EVP_sha256() up in its provider tables on every use, which
  // costs more than hashing 43 bytes. Never freed (it lives as long as the process).
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned int len = 0;
  return md != nullptr &&
         EVP_Digest(secret.data(), secret.size(), out.data(), &len, md, nullptr) == 1 &&
         len == kHashBytes;
}

Status ValidateSpec(const KeySpec& spec) {
  if (spec.name.empty() || spec.name.size() > kMaxNameBytes || !utf8::IsValid(spec.name) ||
      std::any_of(spec.name.begin(), spec.name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return InvalidArgumentError(
        "name: give 1 to 128 bytes of UTF-8 text without control characters");
  }
  if (spec.expires_in.has_value() &&
      (*spec.expires_in <= std::chrono::seconds(0) || *spec.expires_in > kMaxLifetime)) {
    return InvalidArgumentError("expires: give a lifetime above 0 and at most 100 years");
  }
  if (spec.application.has_value()) {
    const std::string& app = *spec.application;
    const bool ok = !app.empty() && app.size() <= kMaxApplicationBytes &&
                    std::all_of(app.begin(), app.end(), [](char c) {
                      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
                    });
    if (!ok) {
      return InvalidArgumentError("application: give 1 to 128 characters of [A-Za-z0-9_.:-]");
    }
  }
  return OkStatus();
}

StatusOr<std::optional<int64_t>> OptionalInt(const store::Value& v) {
  if (store::IsNull(v)) {
    return std::optional<int64_t>();
  }
  EVO_ASSIGN_OR_RETURN(int64_t i, store::AsInt64(v));
  return std::optional<int64_t>(i);
}

// A row of kInfoColumns.
StatusOr<KeyInfo> InfoFromRow(const store::Row& row) {
  if (row.size() < 8) {
    return InternalError("auth_keys: short row");
  }
  KeyInfo info;
  EVO_ASSIGN_OR_RETURN(info.id, store::AsText(row[0]));
  EVO_ASSIGN_OR_RETURN(info.name, store::AsText(row[1]));
  EVO_ASSIGN_OR_RETURN(std::string scopes, store::AsText(row[2]));
  info.scopes = SplitScopes(scopes);
  if (!store::IsNull(row[3])) {
    EVO_ASSIGN_OR_RETURN(info.application, store::AsText(row[3]));
  }
  EVO_ASSIGN_OR_RETURN(int64_t created_ms, store::AsInt64(row[4]));
  info.created_at = FromMs(created_ms);
  EVO_ASSIGN_OR_RETURN(std::optional<int64_t> expires_ms, OptionalInt(row[5]));
  if (expires_ms.has_value()) {
    info.expires_at = FromMs(*expires_ms);
  }
  EVO_ASSIGN_OR_RETURN(std::optional<int64_t> revoked_ms, OptionalInt(row[6]));
  if (revoked_ms.has_value()) {
    info.revoked_at = FromMs(*revoked_ms);
  }
  EVO_ASSIGN_OR_RETURN(info.hint, store::AsText(row[7]));
  return info;
}

std::string JoinScopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const std::string& s : scopes) {
    if (!out.empty()) {
      out += ' ';
    }
    out += s;
  }
  return out;
}

}  // namespace

// What Verify needs of each key, immutable once published.
struct KeyStore::Snapshot {
  struct Entry {
    Hash hash{};
    std::vector<std::string> scopes;
    std::optional<std::string> application;
    std::optional<int64_t> expires_ms;
    bool revoked = false;
  };
  int64_t generation = -1;
  std::unordered_map<std::string, Entry, IdHash, std::equal_to<>> keys;
};

bool LooksLikeApiKey(std::string_view token) {
  return token.substr(0, kTokenPrefix.size()) == kTokenPrefix;
}

StatusOr<std::chrono::seconds> ParseLifetime(std::string_view text) {
  const Status bad = InvalidArgumentError(
      "a lifetime is a whole number and a unit: s, m, h, d or w (e.g. 30d), at most 100 years");
  if (text.size() < 2 || text.size() > 12) {
    return bad;
  }
  int64_t n = 0;
  for (const char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') {
      return bad;
    }
    n = n * 10 + (c - '0');  // at most 11 digits: no overflow
  }
  int64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    case 'w':
      unit = int64_t{7} * 86400;
      break;
    default:
      return bad;
  }
  if (n <= 0 || n > kMaxLifetime.count() / unit) {
    return bad;
  }
  return std::chrono::seconds(n * unit);
}

KeyStore::KeyStore(store::Database& db, const Clock& clock)
    : db_(db), clock_(clock), snapshot_(std::make_shared<const Snapshot>()) {}

KeyStore::~KeyStore() = default;

StatusOr<std::unique_ptr<KeyStore>> KeyStore::Open(store::Database& db, const Clock& clock) {
  EVO_RETURN_IF_ERROR(db.Migrate(kMigrationModule, Migrations()));
  std::unique_ptr<KeyStore> keys(new KeyStore(db, clock));
  EVO_RETURN_IF_ERROR(keys->Refresh());
  return keys;
}

std::shared_ptr<const KeyStore::Snapshot> KeyStore::Current() const {
  const std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

Status KeyStore::Refresh() {
  const std::lock_guard<std::mutex> refresh_lock(refresh_mu_);
  const int64_t have = Current()->generation;
  EVO_ASSIGN_OR_RETURN(store::Row gen_row,
                       db_.QueryOne("SELECT generation FROM auth_key_generation WHERE one = 1"));
  EVO_ASSIGN_OR_RETURN(int64_t generation, store::AsInt64(gen_row.at(0)));
  if (generation == have) {
    return OkStatus();
  }
  auto next = std::make_shared<Snapshot>();
  // One read transaction, so that the generation matches the rows read with it.
  EVO_RETURN_IF_ERROR(db_.Transaction(
      [&](store::Executor& tx) -> Status {
        EVO_ASSIGN_OR_RETURN(
            store::Row row,
            tx.QueryOne("SELECT generation FROM auth_key_generation WHERE one = 1"));
        EVO_ASSIGN_OR_RETURN(next->generation, store::AsInt64(row.at(0)));
        return tx.QueryEach(
            "SELECT id, scopes, application, expires_ms, revoked_ms, secret_sha256 FROM auth_keys",
            {}, [&](const store::Row& r) -> Status {
              if (r.size() < 6) {
                return InternalError("auth_keys: short row");
              }
              Snapshot::Entry entry;
              EVO_ASSIGN_OR_RETURN(std::string id, store::AsText(r[0]));
              EVO_ASSIGN_OR_RETURN(std::string scopes, store::AsText(r[1]));
              entry.scopes = SplitScopes(scopes);
              if (!store::IsNull(r[2])) {
                EVO_ASSIGN_OR_RETURN(entry.application, store::AsText(r[2]));
              }
              EVO_ASSIGN_OR_RETURN(entry.expires_ms, OptionalInt(r[3]));
              entry.revoked = !store::IsNull(r[4]);
              EVO_ASSIGN_OR_RETURN(store::Blob hash, store::AsBlob(r[5]));
              if (hash.bytes.size() != kHashBytes) {
                // A damaged row: leave the key out, so that it verifies nothing.
                return OkStatus();
              }
              std::copy(hash.bytes.begin(), hash.bytes.end(), entry.hash.begin());
              next->keys.emplace(std::move(id), std::move(entry));
              return OkStatus();
            });
      },
      store::TxMode::kReadOnly));
  const std::lock_guard<std::mutex> lock(snapshot_mu_);
  snapshot_ = std::move(next);
  return OkStatus();
}

StatusOr<CreatedKey> KeyStore::Create(const KeySpec& spec) {
  EVO_RETURN_IF_ERROR(ValidateSpec(spec));
  EVO_ASSIGN_OR_RETURN(std::vector<std::string> scopes, ParseScopes(spec.scopes));

  std::array<unsigned char, kSecretBytes> secret_bytes{};
  std::array<unsigned char, kIdHexChars / 2> id_bytes{};
  if (RAND_bytes(secret_bytes.data(), static_cast<int>(secret_bytes.size())) != 1 ||
      RAND_bytes(id_bytes.data(), static_cast<int>(id_bytes.size())) != 1) {
    return InternalError("RAND_bytes failed: no key was made");
  }
  const std::string secret = Base64Url(secret_bytes.data(), secret_bytes.size());
  OPENSSL_cleanse(secret_bytes.data(), secret_bytes.size());
  Hash hash{};
  if (!Sha256(secret, hash)) {
    return InternalError("SHA-256 failed: no key was made");
  }
  std::string id(kIdPrefix);
  for (unsigned char b : id_bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }

  CreatedKey created;
  KeyInfo& info = created.info;
  info.id = id;
  info.name = spec.name;
  info.scopes = scopes;
  info.application = spec.application;
  // Whole milliseconds, as stored, so that the record returned equals what Get reads.
  info.created_at = FromMs(ToMs(clock_.Now()));
  if (spec.expires_in.has_value()) {
    info.expires_at = info.created_at + *spec.expires_in;
  }
  info.hint = secret.substr(secret.size() - kHintChars);
  created.key = std::string(kTokenPrefix) + id + "_" + secret;

  store::Params params = {
      info.id,
      info.name,
      JoinScopes(info.scopes),
      info.application.has_value() ? store::Value(*info.application) : store::Value(nullptr),
      store::Blob{std::string(reinterpret_cast<const char*>(hash.data()), hash.size())},
      info.hint,
      ToMs(info.created_at),
      info.expires_at.has_value() ? store::Value(ToMs(*info.expires_at)) : store::Value(nullptr)};
  EVO_RETURN_IF_ERROR(db_.Exec("INSERT INTO auth_keys(id, name, scopes, application, "
                               "secret_sha256, hint, created_ms, expires_ms) "
                               "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                               params)
                          .status());
  // The key is stored; should the reload fail, it verifies after the next Refresh instead.
  (void)Refresh();
  return created;
}

StatusOr<KeyInfo> KeyStore::GetFrom(store::Executor& ex, std::string_view id) {
  if (!IsKeyId(id)) {
    return NotFoundError("no API key with that id (ids look like key_0123456789abcdef)");
  }
  auto row = ex.QueryOne(
      std::string("SELECT ") + std::string(kInfoColumns) + " FROM auth_keys WHERE id = ?",
      {std::string(id)});
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) {
      return NotFoundError("no API key " + std::string(id));
    }
    return row.status();
  }
  return InfoFromRow(*row);
}

StatusOr<KeyInfo> KeyStore::Get(std::string_view id) { return GetFrom(db_, id); }

StatusOr<std::vector<KeyInfo>> KeyStore::List() {
  std::vector<KeyInfo> out;
  EVO_RETURN_IF_ERROR(db_.QueryEach(std::string("SELECT ") + std::string(kInfoColumns) +
                                        " FROM auth_keys ORDER BY created_ms, id",
                                    {}, [&](const store::Row& row) -> Status {
                                      EVO_ASSIGN_OR_RETURN(KeyInfo info, InfoFromRow(row));
                                      out.push_back(std::move(info));
                                      return OkStatus();
                                    }));
  return out;
}

StatusOr<KeyInfo> KeyStore::Revoke(std::string_view id) {
  KeyInfo info;
  EVO_RETURN_IF_ERROR(db_.Transaction([&](store::Executor& tx) -> Status {
    EVO_ASSIGN_OR_RETURN(info, GetFrom(tx, id));
    if (info.revoked_at.has_value()) {
      return OkStatus();  // already revoked: keep the first time
    }
    info.revoked_at = FromMs(ToMs(clock_.Now()));
    return tx
        .Exec("UPDATE auth_keys SET revoked_ms = ? WHERE id = ?", {ToMs(*info.revoked_at), info.id})
        .status();
  }));
  // Revoked in the database; should the reload fail, it takes effect at the next Refresh.
  (void)Refresh();
  return info;
}

StatusOr<Principal> KeyStore::Verify(std::string_view token) const {
  // evo_ key_<16 hex> _ <43 base64url>
  if (token.size() != kTokenChars || !LooksLikeApiKey(token)) {
    return UnauthenticatedError("malformed API key");
  }
  const std::string_view id = token.substr(kTokenPrefix.size(), kIdChars);
  const std::string_view secret = token.substr(kTokenPrefix.size() + kIdChars + 1);
  if (!IsKeyId(id) || token[kTokenPrefix.size() + kIdChars] != '_' ||
      !std::all_of(secret.begin(), secret.end(), IsBase64Url)) {
    return UnauthenticatedError("malformed API key");
  }
  const std::shared_ptr<const Snapshot> snapshot = Current();
  const auto it = snapshot->keys.find(id);
  if (it == snapshot->keys.end()) {
    return UnauthenticatedError("unknown API key");
  }
  const Snapshot::Entry& entry = it->second;
  Hash hash{};
  if (!Sha256(secret, hash)) {
    return InternalError("SHA-256 failed");
  }
  // The secret first, so that only its holder learns whether a key is revoked or expired.
  if (CRYPTO_memcmp(hash.data(), entry.hash.data(), kHashBytes) != 0) {
    return UnauthenticatedError("wrong API key");
  }
  if (entry.revoked) {
    return UnauthenticatedError("API key revoked");
  }
  if (entry.expires_ms.has_value() && ToMs(clock_.Now()) >= *entry.expires_ms) {
    return UnauthenticatedError("API key expired");
  }
  Principal p;
  p.kind = Principal::Kind::kApiKey;
  p.subject = std::string(id);
  p.scopes = entry.scopes;
  p.application = entry.application;
  return p;
}

}  // namespace evo::auth
