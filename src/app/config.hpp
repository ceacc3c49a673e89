// evo's configuration: every option is a command-line flag, an `EVO_*` environment variable
// and a top-level key in the optional `--config` TOML file (in that order of precedence).
//
// The composition root (main.cpp) owns the Config; each module receives only its own plain
// options struct, built by the To*Options functions below after Validate().
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "auth/jwt.hpp"
#include "bandit/bandit.hpp"
#include "core/logging.hpp"
#include "core/status.hpp"
#include "http/server.hpp"
#include "ids/ids.hpp"
#include "spam/spam.hpp"
#include "webhooks/webhooks.hpp"

namespace evo::app {

struct Config {
  // General
  std::string data_dir = "./data";
  std::string modules = "all";
  logging::Options log;
  // Server
  std::string listen = "127.0.0.1:8080";
  int threads = 0;
  int blocking_threads = 4;
  std::string max_body = "1MiB";
  std::string max_header = "64KiB";
  size_t max_connections = 10000;
  std::string header_timeout = "10s";
  std::string body_timeout = "30s";
  std::string idle_timeout = "60s";
  std::string write_timeout = "30s";
  // Authentication
  std::string auth = "auto";  // auto | on | off
  std::string auth_jwks_url;
  std::string auth_jwks_file;
  std::string auth_issuer;
  std::string auth_audience;
  std::string auth_leeway = "30s";
  std::vector<std::string> auth_scope_claim;  // empty: scope, scp, permissions
  std::string shutdown_timeout = "15s";
  bool access_log = true;
  // IDs
  int64_t worker_id = -1;
  std::string id_epoch = "2025-01-01T00:00:00Z";
  int id_timestamp_bits = 41;
  int id_worker_bits = 10;
  int id_sequence_bits = 12;
  std::string id_tick = "1ms";
  std::string max_backward = "5ms";
  std::string max_borrow = "1s";
  std::string mark_lookahead = "3s";
  std::string max_start_gap = "5s";
  // Spam
  std::string spam_model = "linear";
  double spam_unsure_low = 0.1;
  double spam_unsure_high = 0.9;
  int spam_top_tokens = 5;
  std::string spam_corpus_root;  // empty: no directory training through the API
  // Bandit
  std::string bandit_default_experiment = "default";
  std::string bandit_snapshot_interval = "30s";
  std::string bandit_sync = "none";
  std::string bandit_sync_interval = "1s";
  int64_t bandit_max_sticky_units = 1'000'000;
  int64_t bandit_max_pending_pulls = int64_t{1} << 24;
  // Webhooks
  std::vector<std::string> webhooks_allow_cidr;
  std::string webhooks_request_timeout = "15s";
  std::string webhooks_retry_schedule = "5s,5m,30m,2h,5h,10h,10h";
  std::string webhooks_disable_after = "120h";
  std::string webhooks_secret_grace = "24h";
  std::string webhooks_retention = "2160h";  // 90 days
};

// Adds every option to `app` (global options, so they may follow any subcommand), with
// environment variables and the `--config` file.
void AddFlags(CLI::App& app, Config& config);

// The modules `--modules` names, expanded ("all" -> every module). InvalidArgument naming
// `--modules` for an unknown one.
StatusOr<std::vector<std::string>> EnabledModules(const Config& config);

// Each returns InvalidArgument naming the option ("--max-borrow: ...") for a bad value.
StatusOr<http::ServerOptions> ToServerOptions(const Config& config);
StatusOr<ids::Options> ToIdOptions(const Config& config);
StatusOr<spam::ServiceOptions> ToSpamOptions(const Config& config);
// The canonical --spam-corpus-root (empty when not set); it must be an existing directory.
StatusOr<std::filesystem::path> SpamCorpusRoot(const Config& config);
StatusOr<bandit::ServiceOptions> ToBanditOptions(const Config& config);
StatusOr<webhooks::Options> ToWebhooksOptions(const Config& config);
StatusOr<std::chrono::milliseconds> ShutdownTimeout(const Config& config);
// Whether requests must authenticate: --auth on/off, or for auto, whether --listen is not a
// loopback address (127.0.0.0/8, ::1, localhost).
StatusOr<bool> AuthEnabled(const Config& config);
// True when --listen names a loopback address.
bool ListensOnLoopback(const Config& config);
// The JWT settings, when --auth-jwks-url or --auth-jwks-file is given (then --auth-issuer and
// --auth-audience are required); nullopt otherwise.
StatusOr<std::optional<auth::JwtOptions>> ToJwtOptions(const Config& config);
// The embedded database file: <data-dir>/evo.db.
std::filesystem::path DatabasePath(const Config& config);

// "250ms", "5s", "2m", "1h", "1500" (milliseconds). InvalidArgument otherwise.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);
// "1048576", "512KiB", "1MiB", "1GiB" (also KB/MB/GB as powers of 1000). InvalidArgument
// otherwise.
StatusOr<size_t> ParseBytes(std::string_view text);

}  // namespace evo::app
