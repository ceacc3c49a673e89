#include "app/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <sstream>

namespace evo::app {
namespace {

const std::vector<std::string>& KnownModules() {
  static const auto* const known =
      new std::vector<std::string>{"ids", "spam", "bandit", "queue", "webhooks"};
  return *known;
}

Status Named(std::string_view option, const Status& status) {
  return Status(status.code(), "--" + std::string(option) + ": " + std::string(status.message()));
}

StatusOr<std::chrono::milliseconds> Duration(std::string_view option, const std::string& text) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    return Named(option, d.status());
  }
  return *d;
}

// Modules validate their options structs and name struct fields; the user has to change a
// flag, so whole-word field names in `status` are replaced by the flags that set them.
Status WithFlagNames(const Status& status) {
  static const std::vector<std::pair<std::string_view, std::string_view>> flag_names = {
      {"listen", "--listen"},
      {"blocking_threads", "--blocking-threads"},
      {"threads", "--threads"},
      {"max_body_bytes", "--max-body"},
      {"max_header_bytes", "--max-header"},
      {"max_connections", "--max-connections"},
      {"header_timeout", "--header-timeout"},
      {"body_timeout", "--body-timeout"},
      {"idle_timeout", "--idle-timeout"},
      {"write_timeout", "--write-timeout"},
      {"timestamp_bits", "--id-timestamp-bits"},
      {"worker_bits", "--id-worker-bits"},
      {"sequence_bits", "--id-sequence-bits"},
      {"tick", "--id-tick"},
      {"epoch", "--id-epoch"},
      {"max_backward", "--max-backward"},
      {"max_borrow", "--max-borrow"},
      {"mark_lookahead", "--mark-lookahead"},
      {"max_start_gap", "--max-start-gap"}};
  const auto is_word = [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  };
  const std::string_view in = status.message();
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (is_word(in[i]) && (i == 0 || !is_word(in[i - 1]))) {
      size_t j = i;
      while (j < in.size() && is_word(in[j])) {
        ++j;
      }
      const std::string_view word = in.substr(i, j - i);
      const auto it = std::find_if(flag_names.begin(), flag_names.end(),
                                   [&](const auto& entry) { return entry.first == word; });
      out += it == flag_names.end() ? word : it->second;
      i = j;
    } else {
      out += in[i++];
    }
  }
  return Status(status.code(), out);
}

template <typename Opt>
Opt* Env(Opt* option, const char* env) {
  return option->envname(env);
}

}  // namespace

void AddFlags(CLI::App& app, Config& c) {
  app.set_config("--config", "", "TOML file with options as top-level keys (e.g. listen = \"...\")")
      ->envname("EVO_CONFIG");
  const std::string general = "General";
  Env(app.add_option("--data-dir", c.data_dir, "Directory for embedded storage")
          ->group(general)
          ->capture_default_str(),
      "EVO_DATA_DIR");
  Env(app.add_option("--modules", c.modules, "Comma-separated modules to run, or 'all'")
          ->group(general)
          ->capture_default_str(),
      "EVO_MODULES");
  Env(app.add_option("--log-format", c.log.format, "auto | text | json")
          ->group(general)
          ->capture_default_str(),
      "EVO_LOG_FORMAT");
  Env(app.add_option("--log-level", c.log.level, "trace | debug | info | warn | error | off")
          ->group(general)
          ->capture_default_str(),
      "EVO_LOG_LEVEL");

  const std::string server = "Server";
  Env(app.add_option("--listen", c.listen, "HOST:PORT to listen on (port 0 picks a free port)")
          ->group(server)
          ->capture_default_str(),
      "EVO_LISTEN");
  Env(app.add_option("--threads", c.threads, "I/O threads (0 = number of cores)")
          ->group(server)
          ->check(CLI::Range(0, 256))
          ->capture_default_str(),
      "EVO_THREADS");
  Env(app.add_option("--blocking-threads", c.blocking_threads,
                     "Threads for routes that wait on the disk or compute for long (training, "
                     "admin changes): never the I/O threads")
          ->group(server)
          ->check(CLI::Range(1, 256))
          ->capture_default_str(),
      "EVO_BLOCKING_THREADS");
  Env(app.add_option("--max-body", c.max_body, "Default request body limit")
          ->group(server)
          ->capture_default_str(),
      "EVO_MAX_BODY");
  Env(app.add_option("--max-header", c.max_header, "Request line + headers limit")
          ->group(server)
          ->capture_default_str(),
      "EVO_MAX_HEADER");
  Env(app.add_option("--max-connections", c.max_connections, "Concurrent connections limit")
          ->group(server)
          ->check(CLI::Range(1, 1000000))
          ->capture_default_str(),
      "EVO_MAX_CONNECTIONS");
  Env(app.add_option("--header-timeout", c.header_timeout, "Time to receive a request header")
          ->group(server)
          ->capture_default_str(),
      "EVO_HEADER_TIMEOUT");
  Env(app.add_option("--body-timeout", c.body_timeout, "Time to receive a request body")
          ->group(server)
          ->capture_default_str(),
      "EVO_BODY_TIMEOUT");
  Env(app.add_option("--idle-timeout", c.idle_timeout, "Keep-alive idle time before closing")
          ->group(server)
          ->capture_default_str(),
      "EVO_IDLE_TIMEOUT");
  Env(app.add_option("--write-timeout", c.write_timeout, "Time to send a response")
          ->group(server)
          ->capture_default_str(),
      "EVO_WRITE_TIMEOUT");
  Env(app.add_option("--shutdown-timeout", c.shutdown_timeout,
                     "On SIGTERM, time for in-flight requests to finish")
          ->group(server)
          ->capture_default_str(),
      "EVO_SHUTDOWN_TIMEOUT");
  Env(app.add_option("--access-log", c.access_log, "One log line per request (true/false)")
          ->group(server)
          ->capture_default_str(),
      "EVO_ACCESS_LOG");

  const std::string ids = "IDs";
  Env(app.add_option("--worker-id", c.worker_id,
                     "Worker id (-1 = lease the lowest free one in the data dir)")
          ->group(ids)
          ->capture_default_str(),
      "EVO_WORKER_ID");
  Env(app.add_option("--id-epoch", c.id_epoch, "Epoch of the timestamp field (RFC 3339, UTC)")
          ->group(ids)
          ->capture_default_str(),
      "EVO_ID_EPOCH");
  Env(app.add_option("--id-timestamp-bits", c.id_timestamp_bits, "Bits of timestamp")
          ->group(ids)
          ->capture_default_str(),
      "EVO_ID_TIMESTAMP_BITS");
  Env(app.add_option("--id-worker-bits", c.id_worker_bits, "Bits of worker id")
          ->group(ids)
          ->capture_default_str(),
      "EVO_ID_WORKER_BITS");
  Env(app.add_option("--id-sequence-bits", c.id_sequence_bits, "Bits of sequence")
          ->group(ids)
          ->capture_default_str(),
      "EVO_ID_SEQUENCE_BITS");
  Env(app.add_option("--id-tick", c.id_tick, "Time unit of the timestamp field (1ms..1s)")
          ->group(ids)
          ->capture_default_str(),
      "EVO_ID_TICK");
  Env(app.add_option("--max-backward", c.max_backward, "Clock steps back up to this are waited out")
          ->group(ids)
          ->capture_default_str(),
      "EVO_MAX_BACKWARD");
  Env(app.add_option("--max-borrow", c.max_borrow,
                     "How far the logical clock may run ahead before IDs are refused")
          ->group(ids)
          ->capture_default_str(),
      "EVO_MAX_BORROW");
  Env(app.add_option("--mark-lookahead", c.mark_lookahead,
                     "How far ahead the persisted high-water mark is written")
          ->group(ids)
          ->capture_default_str(),
      "EVO_MARK_LOOKAHEAD");
  Env(app.add_option("--max-start-gap", c.max_start_gap,
                     "At start, a high-water mark at most this far ahead of the clock is "
                     "bridged; beyond it the service stays not ready")
          ->group(ids)
          ->capture_default_str(),
      "EVO_MAX_START_GAP");

  const std::string spam = "Spam";
  Env(app.add_option("--spam-model", c.spam_model,
                     "Model family of new spam models: linear (SVM, default) | nb (naive "
                     "Bayes, learns from feedback)")
          ->group(spam)
          ->capture_default_str(),
      "EVO_SPAM_MODEL");
  Env(app.add_option("--spam-unsure-low", c.spam_unsure_low, "Spam probabilities from this one...")
          ->group(spam)
          ->capture_default_str(),
      "EVO_SPAM_UNSURE_LOW");
  Env(app.add_option("--spam-unsure-high", c.spam_unsure_high,
                     "...to this one are flagged \"unsure\"")
          ->group(spam)
          ->capture_default_str(),
      "EVO_SPAM_UNSURE_HIGH");
  Env(app.add_option("--spam-top-tokens", c.spam_top_tokens,
                     "Explanation tokens per direction in each verdict (0..50)")
          ->group(spam)
          ->capture_default_str(),
      "EVO_SPAM_TOP_TOKENS");
  Env(app.add_option("--spam-corpus-root", c.spam_corpus_root,
                     "Directory below which POST /v1/spam/models may read a training corpus "
                     "(\"directory\"); symbolic links are not followed. Unset: only inline "
                     "messages train through the API")
          ->group(spam),
      "EVO_SPAM_CORPUS_ROOT");

  const std::string auth = "Authentication";
  Env(app.add_option("--auth", c.auth,
                     "auto | on | off. auto: on unless --listen is a loopback address. On: every "
                     "route but /livez, /readyz, /metrics and /openapi.json needs "
                     "`Authorization: Bearer <API key or JWT>` with the route's scope")
          ->group(auth)
          ->check(CLI::IsMember({"auto", "on", "off"}))
          ->capture_default_str(),
      "EVO_AUTH");
  Env(app.add_option("--auth-jwks-url", c.auth_jwks_url,
                     "JWKS of the OIDC provider whose JWTs are accepted (RS256, ES256, EdDSA)")
          ->group(auth),
      "EVO_AUTH_JWKS_URL");
  Env(app.add_option("--auth-jwks-file", c.auth_jwks_file, "The JWKS from a file instead")
          ->group(auth),
      "EVO_AUTH_JWKS_FILE");
  Env(app.add_option("--auth-issuer", c.auth_issuer, "Required `iss` of JWTs")->group(auth),
      "EVO_AUTH_ISSUER");
  Env(app.add_option("--auth-audience", c.auth_audience, "Required `aud` of JWTs")->group(auth),
      "EVO_AUTH_AUDIENCE");
  Env(app.add_option("--auth-leeway", c.auth_leeway, "Clock skew allowed on exp and nbf")
          ->group(auth)
          ->capture_default_str(),
      "EVO_AUTH_LEEWAY");
  Env(app.add_option("--auth-scope-claim", c.auth_scope_claim,
                     "JWT claims holding scopes (repeatable; default scope, scp, permissions)")
          ->group(auth),
      "EVO_AUTH_SCOPE_CLAIM");

  const std::string bandit = "Bandit";
  Env(app.add_option("--bandit-default-experiment", c.bandit_default_experiment,
                     "Experiment behind the original server's GET/POST /arms and GET "
                     "/arms/stats (\"\" = no such routes)")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_DEFAULT_EXPERIMENT");
  Env(app.add_option("--bandit-snapshot-interval", c.bandit_snapshot_interval,
                     "How often bandit state is snapshotted (the journal is replayed on top)")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_SNAPSHOT_INTERVAL");
  Env(app.add_option("--bandit-sync", c.bandit_sync,
                     "When the bandit journal is msynced: none (a process kill loses nothing "
                     "acknowledged, an OS crash what was not yet written back), interval "
                     "(every --bandit-sync-interval), always (before each answer)")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_SYNC");
  Env(app.add_option("--bandit-sync-interval", c.bandit_sync_interval,
                     "How often --bandit-sync interval msyncs the journal")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_SYNC_INTERVAL");
  Env(app.add_option("--bandit-max-sticky-units", c.bandit_max_sticky_units,
                     "Units whose arm an experiment remembers (least recently seen forgotten "
                     "first; 16 bytes each)")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_MAX_STICKY_UNITS");
  Env(app.add_option("--bandit-max-pending-pulls", c.bandit_max_pending_pulls,
                     "Pulls an experiment keeps for their rewards (oldest expire early beyond; "
                     "8 bytes each)")
          ->group(bandit)
          ->capture_default_str(),
      "EVO_BANDIT_MAX_PENDING_PULLS");

  const std::string webhooks = "Webhooks";
  Env(app.add_option("--webhooks-allow-cidr", c.webhooks_allow_cidr,
                     "Address range endpoints may reach although the SSRF guard refuses it "
                     "(loopback, private...); repeatable, e.g. 127.0.0.1/32")
          ->group(webhooks)
          ->take_all(),
      "EVO_WEBHOOKS_ALLOW_CIDR");
  Env(app.add_option("--webhooks-request-timeout", c.webhooks_request_timeout,
                     "Timeout of one delivery request")
          ->group(webhooks)
          ->capture_default_str(),
      "EVO_WEBHOOKS_REQUEST_TIMEOUT");
  Env(app.add_option("--webhooks-retry-schedule", c.webhooks_retry_schedule,
                     "Delays between delivery attempts (each +-20 %), then the delivery fails")
          ->group(webhooks)
          ->capture_default_str(),
      "EVO_WEBHOOKS_RETRY_SCHEDULE");
  Env(app.add_option("--webhooks-disable-after", c.webhooks_disable_after,
                     "An endpoint failing without a success this long is disabled")
          ->group(webhooks)
          ->capture_default_str(),
      "EVO_WEBHOOKS_DISABLE_AFTER");
  Env(app.add_option("--webhooks-secret-grace", c.webhooks_secret_grace,
                     "How long a rotated secret keeps signing beside the new one")
          ->group(webhooks)
          ->capture_default_str(),
      "EVO_WEBHOOKS_SECRET_GRACE");
  Env(app.add_option("--webhooks-retention", c.webhooks_retention,
                     "Messages older than this are deleted with their attempts (0 keeps them)")
          ->group(webhooks)
          ->capture_default_str(),
      "EVO_WEBHOOKS_RETENTION");
}

StatusOr<std::vector<std::string>> EnabledModules(const Config& config) {
  std::vector<std::string> out;
  std::stringstream in(config.modules);
  std::string name;
  while (std::getline(in, name, ',')) {
    name.erase(
        std::remove_if(name.begin(), name.end(), [](unsigned char ch) { return std::isspace(ch); }),
        name.end());
    if (name.empty()) {
      continue;
    }
    if (name == "all") {
      return KnownModules();
    }
    if (std::find(KnownModules().begin(), KnownModules().end(), name) == KnownModules().end()) {
      return InvalidArgumentError("--modules: unknown module '" + name +
                                  "' (known: ids, spam, bandit, all)");
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) {
      out.push_back(name);
    }
  }
  if (out.empty()) {
    return InvalidArgumentError("--modules: name at least one module, or 'all'");
  }
  return out;
}

StatusOr<http::ServerOptions> ToServerOptions(const Config& c) {
  http::ServerOptions o;
  o.listen = c.listen;
  o.threads = c.threads;
  o.blocking_threads = c.blocking_threads;
  auto body = ParseBytes(c.max_body);
  if (!body.ok()) {
    return Named("max-body", body.status());
  }
  o.max_body_bytes = *body;
  auto header = ParseBytes(c.max_header);
  if (!header.ok()) {
    return Named("max-header", header.status());
  }
  o.max_header_bytes = *header;
  o.max_connections = c.max_connections;
  EVO_ASSIGN_OR_RETURN(o.header_timeout, Duration("header-timeout", c.header_timeout));
  EVO_ASSIGN_OR_RETURN(o.body_timeout, Duration("body-timeout", c.body_timeout));
  EVO_ASSIGN_OR_RETURN(o.idle_timeout, Duration("idle-timeout", c.idle_timeout));
  EVO_ASSIGN_OR_RETURN(o.write_timeout, Duration("write-timeout", c.write_timeout));
  o.access_log = c.access_log;
  if (Status s = http::Validate(o); !s.ok()) {
    return WithFlagNames(s);
  }
  return o;
}

StatusOr<ids::Options> ToIdOptions(const Config& c) {
  ids::Options o;
  auto epoch = evo::ParseTimestamp(c.id_epoch);
  if (!epoch.ok()) {
    return Named("id-epoch", epoch.status());
  }
  o.layout.epoch = *epoch;
  o.layout.timestamp_bits = c.id_timestamp_bits;
  o.layout.worker_bits = c.id_worker_bits;
  o.layout.sequence_bits = c.id_sequence_bits;
  EVO_ASSIGN_OR_RETURN(o.layout.tick, Duration("id-tick", c.id_tick));
  EVO_ASSIGN_OR_RETURN(o.max_backward, Duration("max-backward", c.max_backward));
  EVO_ASSIGN_OR_RETURN(o.max_borrow, Duration("max-borrow", c.max_borrow));
  EVO_ASSIGN_OR_RETURN(o.mark_lookahead, Duration("mark-lookahead", c.mark_lookahead));
  EVO_ASSIGN_OR_RETURN(o.max_start_gap, Duration("max-start-gap", c.max_start_gap));
  if (Status s = ids::Validate(o.layout, RealClock()); !s.ok()) {
    return WithFlagNames(s);
  }
  if (Status s = ids::Validate(o); !s.ok()) {
    return WithFlagNames(s);
  }
  if (c.worker_id > o.layout.MaxWorkerId() || c.worker_id < -1) {
    return InvalidArgumentError("--worker-id: must be -1 (lease) or 0.." +
                                std::to_string(o.layout.MaxWorkerId()) + " for " +
                                std::to_string(o.layout.worker_bits) + " worker bits");
  }
  return o;
}

StatusOr<spam::ServiceOptions> ToSpamOptions(const Config& c) {
  spam::ServiceOptions o;
  auto family = spam::ParseFamily(c.spam_model);
  if (!family.ok()) {
    return Named("spam-model", family.status());
  }
  o.family = *family;
  o.unsure.low = c.spam_unsure_low;
  o.unsure.high = c.spam_unsure_high;
  if (!(c.spam_unsure_low >= 0 && c.spam_unsure_low <= c.spam_unsure_high &&
        c.spam_unsure_high <= 1)) {
    return InvalidArgumentError("--spam-unsure-low/--spam-unsure-high: need 0 <= low <= high <= 1");
  }
  if (c.spam_top_tokens < 0 || c.spam_top_tokens > 50) {
    return InvalidArgumentError("--spam-top-tokens: must be 0..50");
  }
  o.top_tokens = static_cast<size_t>(c.spam_top_tokens);
  EVO_RETURN_IF_ERROR(spam::Validate(o));
  return o;
}

bool ListensOnLoopback(const Config& c) {
  const size_t colon = c.listen.rfind(':');
  std::string host = c.listen.substr(0, colon == std::string::npos ? 0 : colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

StatusOr<bool> AuthEnabled(const Config& c) {
  if (c.auth == "on") {
    return true;
  }
  if (c.auth == "off") {
    return false;
  }
  if (c.auth == "auto") {
    return !ListensOnLoopback(c);
  }
  return InvalidArgumentError("--auth: expected auto, on or off, got '" + c.auth + "'");
}

StatusOr<std::optional<auth::JwtOptions>> ToJwtOptions(const Config& c) {
  if (c.auth_jwks_url.empty() && c.auth_jwks_file.empty()) {
    return std::optional<auth::JwtOptions>();
  }
  if (!c.auth_jwks_url.empty() && !c.auth_jwks_file.empty()) {
    return InvalidArgumentError("--auth-jwks-url and --auth-jwks-file exclude each other");
  }
  if (c.auth_issuer.empty() || c.auth_audience.empty()) {
    return InvalidArgumentError("--auth-issuer and --auth-audience are required with a JWKS");
  }
  auth::JwtOptions o;
  o.issuer = c.auth_issuer;
  o.audience = c.auth_audience;
  auto leeway = ParseDuration(c.auth_leeway);
  if (!leeway.ok()) {
    return Named("auth-leeway", leeway.status());
  }
  o.leeway = std::chrono::duration_cast<std::chrono::seconds>(*leeway);
  if (!c.auth_scope_claim.empty()) {
    o.scope_claims = c.auth_scope_claim;
  }
  if (Status s = auth::Validate(o); !s.ok()) {
    return InvalidArgumentError("--auth: " + std::string(s.message()));
  }
  return std::optional<auth::JwtOptions>(std::move(o));
}

StatusOr<std::filesystem::path> SpamCorpusRoot(const Config& c) {
  if (c.spam_corpus_root.empty()) {
    return std::filesystem::path();
  }
  std::error_code ec;
  std::filesystem::path root = std::filesystem::canonical(c.spam_corpus_root, ec);
  if (ec || !std::filesystem::is_directory(root, ec)) {
    return InvalidArgumentError("--spam-corpus-root: '" + c.spam_corpus_root +
                                "' is not an existing directory");
  }
  return root;
}

StatusOr<bandit::ServiceOptions> ToBanditOptions(const Config& c) {
  bandit::ServiceOptions o;
  EVO_ASSIGN_OR_RETURN(o.snapshot_interval,
                       Duration("bandit-snapshot-interval", c.bandit_snapshot_interval));
  if (o.snapshot_interval < std::chrono::milliseconds(100)) {
    return InvalidArgumentError("--bandit-snapshot-interval: at least 100ms");
  }
  auto sync = bandit::ParseSyncMode(c.bandit_sync);
  if (!sync.ok()) {
    return InvalidArgumentError("--bandit-sync: " + std::string(sync.status().message()));
  }
  o.sync = *sync;
  EVO_ASSIGN_OR_RETURN(o.sync_interval, Duration("bandit-sync-interval", c.bandit_sync_interval));
  if (o.sync_interval < std::chrono::milliseconds(1)) {
    return InvalidArgumentError("--bandit-sync-interval: at least 1ms");
  }
  if (c.bandit_max_sticky_units < 1) {
    return InvalidArgumentError("--bandit-max-sticky-units: at least 1");
  }
  o.max_sticky_units = static_cast<uint64_t>(c.bandit_max_sticky_units);
  if (c.bandit_max_pending_pulls < 1) {
    return InvalidArgumentError("--bandit-max-pending-pulls: at least 1");
  }
  o.max_pending_pulls = static_cast<uint64_t>(c.bandit_max_pending_pulls);
  return o;
}

StatusOr<webhooks::Options> ToWebhooksOptions(const Config& c) {
  webhooks::Options o;
  for (const std::string& cidr : c.webhooks_allow_cidr) {
    auto parsed = outbound::ParseCidr(cidr);
    if (!parsed.ok()) {
      return InvalidArgumentError("--webhooks-allow-cidr: " +
                                  std::string(parsed.status().message()));
    }
    o.ssrf.allow.push_back(*parsed);
  }
  EVO_ASSIGN_OR_RETURN(o.request_timeout,
                       Duration("webhooks-request-timeout", c.webhooks_request_timeout));
  EVO_ASSIGN_OR_RETURN(o.disable_after,
                       Duration("webhooks-disable-after", c.webhooks_disable_after));
  EVO_ASSIGN_OR_RETURN(o.secret_grace, Duration("webhooks-secret-grace", c.webhooks_secret_grace));
  EVO_ASSIGN_OR_RETURN(o.retention, Duration("webhooks-retention", c.webhooks_retention));
  o.retry_schedule.clear();
  std::stringstream in(c.webhooks_retry_schedule);
  std::string item;
  while (std::getline(in, item, ',')) {
    EVO_ASSIGN_OR_RETURN(auto d, Duration("webhooks-retry-schedule", item));
    o.retry_schedule.push_back(d);
  }
  if (Status s = webhooks::Validate(o); !s.ok()) {
    return InvalidArgumentError("--webhooks-*: " + std::string(s.message()));
  }
  return o;
}

std::filesystem::path DatabasePath(const Config& config) {
  return std::filesystem::path(config.data_dir) / "evo.db";
}

StatusOr<std::chrono::milliseconds> ShutdownTimeout(const Config& config) {
  return Duration("shutdown-timeout", config.shutdown_timeout);
}

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  int64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin || value < 0) {
    return InvalidArgumentError("'" + std::string(text) +
                                "' is not a duration (e.g. 250ms, 5s, 2m, 1h)");
  }
  const std::string_view unit(ptr, static_cast<size_t>(end - ptr));
  int64_t scale = 0;
  if (unit.empty() || unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return InvalidArgumentError("'" + std::string(text) +
                                "' has an unknown unit (use ms, s, m or h)");
  }
  if (value > INT64_MAX / scale / 1000) {
    return InvalidArgumentError("'" + std::string(text) + "' is too long a duration");
  }
  return std::chrono::milliseconds(value * scale);
}

StatusOr<size_t> ParseBytes(std::string_view text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) {
    return InvalidArgumentError("'" + std::string(text) + "' is not a size (e.g. 1MiB, 64KiB)");
  }
  const std::string_view unit(ptr, static_cast<size_t>(end - ptr));
  uint64_t scale = 0;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "KiB") {
    scale = 1ULL << 10;
  } else if (unit == "MiB") {
    scale = 1ULL << 20;
  } else if (unit == "GiB") {
    scale = 1ULL << 30;
  } else if (unit == "KB" || unit == "kB") {
    scale = 1000;
  } else if (unit == "MB") {
    scale = 1000'000;
  } else if (unit == "GB") {
    scale = 1000'000'000;
  } else {
    return InvalidArgumentError("'" + std::string(text) +
                                "' has an unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)");
  }
  if (value > (1ULL << 40) / scale) {
    return InvalidArgumentError("'" + std::string(text) + "' is too large");
  }
  return static_cast<size_t>(value * scale);
}

}  // namespace evo::app
