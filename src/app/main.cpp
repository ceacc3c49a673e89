// evo: the composition root. The only file that knows every module; it turns configuration
// into each module's options, wires modules to the HTTP server (`evo serve`, which owns
// start-up and shutdown order: reverse of start-up) and registers each module's commands
// (`src/<module>/cli.cpp`), handing them what they need of the configuration.
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app/authn.hpp"
#include "app/config.hpp"
#include "auth/cli.hpp"
#include "bandit/bandit.hpp"
#include "bandit/cli.hpp"
#include "bandit/http.hpp"
#include "cli/cli.hpp"
#include "core/clock.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "http/operational.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "ids/cli.hpp"
#include "ids/http.hpp"
#include "ids/ids.hpp"
#include "queue/cli.hpp"
#include "queue/http.hpp"
#include "queue/queue.hpp"
#include "spam/cli.hpp"
#include "spam/http.hpp"
#include "spam/spam.hpp"
#include "store/data_dir.hpp"
#include "store/store.hpp"
#include "webhooks/cli.hpp"
#include "webhooks/http.hpp"
#include "webhooks/webhooks.hpp"

#ifndef EVO_VERSION
#define EVO_VERSION "0.0.0"
#endif

namespace evo::app {
namespace {

using cli::ExitCodeFor;
using cli::Fail;
using cli::kExitFailure;
using cli::kExitUsage;

// The ids module's pieces, opened from the data dir: lease, mark file, generator.
struct IdsModule {
  std::unique_ptr<MonotonicWallClock> clock;
  std::unique_ptr<ids::Generator> generator;
  std::unique_ptr<ids::Uuid7Generator> uuids;
  std::unique_ptr<ids::UlidGenerator> ulids;
};

// The generator on <data-dir>/ids: a leased worker id and its high-water mark file, so that
// the server and `evo id new` on the same data dir never issue the same ID. `clock` must
// outlive it.
StatusOr<std::unique_ptr<ids::Generator>> OpenGenerator(const Config& config, const Clock& clock) {
  EVO_ASSIGN_OR_RETURN(ids::Options options, ToIdOptions(config));
  const std::filesystem::path dir = std::filesystem::path(config.data_dir) / "ids";
  EVO_ASSIGN_OR_RETURN(auto lease,
                       ids::AcquireFileLease(dir, config.worker_id, options.layout.MaxWorkerId()));
  const int64_t worker = lease->worker_id();
  auto marks = ids::FileMarkStore(dir / ("worker-" + std::to_string(worker) + ".mark"));
  return ids::Generator::Open(options, clock, std::move(lease), std::move(marks));
}

StatusOr<IdsModule> OpenIds(const Config& config) {
  IdsModule m;
  // Elapsed time comes from the monotonic clock while running (see MonotonicWallClock).
  m.clock = std::make_unique<MonotonicWallClock>(RealClock());
  EVO_ASSIGN_OR_RETURN(m.generator, OpenGenerator(config, *m.clock));
  m.uuids = std::make_unique<ids::Uuid7Generator>(*m.clock);
  m.ulids = std::make_unique<ids::UlidGenerator>(*m.clock);
  return m;
}

// The data dir's lock (store/data_dir.hpp), naming the dir as the user gave it.
StatusOr<store::DataDirLock> LockDataDir(const Config& config) {
  return store::DataDirLock::Acquire(config.data_dir, config.data_dir);
}

std::filesystem::path QueuePath(const Config& config) {
  return std::filesystem::path(config.data_dir) / "queue.db";
}

// The queue broker on <data-dir>/queue.db; message ids from `ids`.
StatusOr<std::unique_ptr<queue::Broker>> OpenBroker(const Config& config, ids::Generator& ids,
                                                    metrics::Registry* registry, bool read_only) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  queue::BrokerOptions options;
  options.path = QueuePath(config);
  options.read_only = read_only;
  return queue::OpenSqliteBroker(
      options, RealClock(),
      [&ids](size_t n) -> StatusOr<std::vector<queue::MessageId>> {
        EVO_ASSIGN_OR_RETURN(std::vector<ids::Id> batch, ids.NextBatch(n));
        return std::vector<queue::MessageId>(batch.begin(), batch.end());
      },
      registry);
}

// The spam module's pieces: the embedded database and the service on it.
struct SpamModule {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<spam::Service> service;
};

// The embedded database shared by the modules that keep state in `store`.
StatusOr<std::unique_ptr<store::Database>> OpenDatabase(const Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return FailedPreconditionError("--data-dir " + config.data_dir + ": " + ec.message());
  }
  store::SqliteOptions db_options;
  db_options.path = DatabasePath(config).string();
  db_options.background_checkpoint = true;  // the webhook attempt log writes all the time
  return store::OpenSqlite(db_options);
}

StatusOr<SpamModule> OpenSpam(const Config& config) {
  EVO_ASSIGN_OR_RETURN(spam::ServiceOptions options, ToSpamOptions(config));
  SpamModule m;
  EVO_ASSIGN_OR_RETURN(m.db, OpenDatabase(config));
  EVO_ASSIGN_OR_RETURN(m.service, spam::Service::Open(*m.db, options, RealClock()));
  return m;
}

// Blocks SIGTERM/SIGINT in every thread (call before starting any) so that the main thread
// alone receives them through sigtimedwait.
sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int Serve(const Config& config) {
  // Before any thread exists (the async access logger starts one): every thread created
  // later inherits the mask, so SIGTERM can only be taken by sigtimedwait below.
  const sigset_t signals = BlockShutdownSignals();
  if (Status s = logging::Init(config.log); !s.ok()) {
    return Fail(kExitUsage, s);
  }
  auto modules = EnabledModules(config);
  if (!modules.ok()) {
    return Fail(kExitUsage, modules.status());
  }
  // Every module but ids keeps state in the data dir that one process at a time may write.
  std::optional<store::DataDirLock> data_dir_lock;
  if (std::any_of(modules->begin(), modules->end(),
                  [](const std::string& m) { return m != "ids"; })) {
    auto lock = LockDataDir(config);
    if (!lock.ok()) {
      return Fail(kExitFailure, lock.status());
    }
    data_dir_lock.emplace(std::move(*lock));
  }
  auto server_options = ToServerOptions(config);
  if (!server_options.ok()) {
    return Fail(kExitUsage, server_options.status());
  }
  auto shutdown_timeout = ShutdownTimeout(config);
  if (!shutdown_timeout.ok()) {
    return Fail(kExitUsage, shutdown_timeout.status());
  }
  if (auto ids_options = ToIdOptions(config); !ids_options.ok()) {
    return Fail(kExitUsage, ids_options.status());
  }
  if (auto spam_options = ToSpamOptions(config); !spam_options.ok()) {
    return Fail(kExitUsage, spam_options.status());
  }
  auto spam_corpus_root = SpamCorpusRoot(config);
  if (!spam_corpus_root.ok()) {
    return Fail(kExitUsage, spam_corpus_root.status());
  }

  metrics::Registry registry;
  http::Readiness readiness;
  http::Router router;
  http::RegisterOperationalRoutes(router, readiness, registry, EVO_VERSION);
  registry.AddGauge("evo_build_info", "Always 1, labelled with the running version.", {"version"})
      .Get({EVO_VERSION})
      .Set(1);

  std::optional<IdsModule> ids_module;
  std::optional<SpamModule> spam_module;
  std::unique_ptr<store::Database> bandit_db;
  std::unique_ptr<bandit::Service> bandit_service;
  for (const std::string& name : *modules) {
    if (name == "bandit") {
      auto options = ToBanditOptions(config);
      if (!options.ok()) {
        return Fail(kExitUsage, options.status());
      }
      auto db = OpenDatabase(config);
      if (!db.ok()) {
        return Fail(ExitCodeFor(db.status()), db.status());
      }
      bandit_db = std::move(*db);
      auto opened = bandit::Service::Open(
          *bandit_db, std::filesystem::path(config.data_dir) / "bandit", *options, RealClock());
      if (!opened.ok()) {
        spdlog::error("bandit: {}", opened.status().ToString());
        return Fail(ExitCodeFor(opened.status()), opened.status());
      }
      bandit_service = std::move(*opened);
      bandit::RegisterRoutes(router, *bandit_service, registry, config.bandit_default_experiment);
      spdlog::info("bandit: state in {}/bandit, /arms on experiment \"{}\"", config.data_dir,
                   config.bandit_default_experiment);
    }
    if (name == "spam") {
      auto opened = OpenSpam(config);
      if (!opened.ok()) {
        spdlog::error("spam: {}", opened.status().ToString());
        return Fail(ExitCodeFor(opened.status()), opened.status());
      }
      spam_module = std::move(*opened);
      spam::RegisterRoutes(router, *spam_module->service, registry,
                           {.corpus_root = *spam_corpus_root});
      spdlog::info("spam: active model version {} (database {})",
                   spam_module->service->active_version(), DatabasePath(config).string());
    }
    if (name == "ids") {
      auto opened = OpenIds(config);
      if (!opened.ok()) {
        spdlog::error("ids: {}", opened.status().ToString());
        return Fail(
            opened.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure,
            opened.status());
      }
      ids_module = std::move(*opened);
      ids::RegisterRoutes(router, *ids_module->generator, *ids_module->uuids, *ids_module->ulids,
                          *ids_module->clock, registry);
      spdlog::info("ids: worker {} (data dir {})", ids_module->generator->worker_id(),
                   config.data_dir);
    }
  }
  std::unique_ptr<queue::Broker> broker;
  const auto enabled = [&](std::string_view name) {
    return std::find(modules->begin(), modules->end(), name) != modules->end();
  };
  if (enabled("queue") || enabled("webhooks")) {
    // Message ids come from the ids generator, opened here when the ids routes are off.
    if (!ids_module) {
      auto opened = OpenIds(config);
      if (!opened.ok()) {
        return Fail(ExitCodeFor(opened.status()), opened.status());
      }
      ids_module = std::move(*opened);
    }
    auto opened = OpenBroker(config, *ids_module->generator, &registry, /*read_only=*/false);
    if (!opened.ok()) {
      spdlog::error("queue: {}", opened.status().ToString());
      return Fail(ExitCodeFor(opened.status()), opened.status());
    }
    broker = std::move(*opened);
    if (enabled("queue")) {
      // The modules' own queues are internal: not listed, read or written through the API.
      queue::RegisterRoutes(router, *broker,
                            {.internal_prefixes = {std::string(webhooks::kQueuePrefix)}});
    }
    spdlog::info("queue: messages in {}", QueuePath(config).string());
  }
  std::unique_ptr<store::Database> webhooks_db;
  std::unique_ptr<webhooks::Service> webhooks_service;
  if (enabled("webhooks")) {
    auto options = ToWebhooksOptions(config);
    if (!options.ok()) {
      return Fail(kExitUsage, options.status());
    }
    auto db = OpenDatabase(config);
    if (!db.ok()) {
      return Fail(ExitCodeFor(db.status()), db.status());
    }
    webhooks_db = std::move(*db);
    ids::Generator& generator = *ids_module->generator;
    auto opened = webhooks::Service::Open(
        *options, *webhooks_db, *broker,
        [&generator](size_t n) -> StatusOr<std::vector<queue::MessageId>> {
          EVO_ASSIGN_OR_RETURN(std::vector<ids::Id> batch, generator.NextBatch(n));
          return std::vector<queue::MessageId>(batch.begin(), batch.end());
        },
        RealClock(), &registry);
    if (!opened.ok()) {
      spdlog::error("webhooks: {}", opened.status().ToString());
      return Fail(ExitCodeFor(opened.status()), opened.status());
    }
    webhooks_service = std::move(*opened);
    webhooks::RegisterRoutes(router, *webhooks_service);
    spdlog::info("webhooks: {} address ranges allowed past the SSRF guard",
                 options->ssrf.allow.size());
  }
  // Authentication (README "Authentication"): API keys from evo.db, JWTs when a JWKS is set.
  auto auth_on = AuthEnabled(config);
  if (!auth_on.ok()) {
    return Fail(kExitUsage, auth_on.status());
  }
  auto jwt_options = ToJwtOptions(config);
  if (!jwt_options.ok()) {
    return Fail(kExitUsage, jwt_options.status());
  }
  std::unique_ptr<store::Database> auth_db;
  std::unique_ptr<auth::KeyStore> keys;
  std::unique_ptr<auth::JwtVerifier> jwt;
  if (*auth_on) {
    auto db = OpenDatabase(config);
    if (!db.ok()) {
      return Fail(ExitCodeFor(db.status()), db.status());
    }
    auth_db = std::move(*db);
    auto opened = auth::KeyStore::Open(*auth_db, RealClock());
    if (!opened.ok()) {
      return Fail(ExitCodeFor(opened.status()), opened.status());
    }
    keys = std::move(*opened);
    if (*jwt_options) {
      auto fetcher = config.auth_jwks_url.empty() ? auth::JwksFileFetcher(config.auth_jwks_file)
                                                  : JwksUrlFetcher(config.auth_jwks_url);
      auto verifier = auth::JwtVerifier::Create(**jwt_options, std::move(fetcher), RealClock());
      if (!verifier.ok()) {
        return Fail(kExitFailure, verifier.status());
      }
      jwt = std::move(*verifier);
    }
    router.SetAuthenticator(MakeAuthenticator(*keys, jwt.get(), registry));
    spdlog::info(
        "authentication on: API keys{}; /livez, /readyz, /metrics and /openapi.json "
        "stay public",
        jwt ? " and JWTs from " + config.auth_issuer : "");
  } else if (ListensOnLoopback(config)) {
    spdlog::info("authentication off (loopback): every request acts as admin");
  } else {
    spdlog::warn(
        "AUTHENTICATION IS OFF on {}: anyone who can reach it acts as admin "
        "(--auth on to require credentials)",
        config.listen);
  }

  // Readiness of each module is re-evaluated by the main loop below.
  auto update_readiness = [&] {
    if (keys) {
      // Keys created or revoked by `evo keys` take effect within a tick.
      if (const Status s = keys->Refresh(); !s.ok()) {
        spdlog::warn("auth: reloading the API keys: {}", s.ToString());
      }
    }
    if (ids_module) {
      const Status s = ids_module->generator->Ready();
      readiness.Set("ids", s.ok(), std::string(s.message()));
    }
    if (spam_module) {
      // Picks up versions activated (and feedback recorded) by other processes on the same
      // database. Failing to re-read keeps the model already loaded: still ready.
      if (const Status s = spam_module->service->Refresh(); !s.ok()) {
        spdlog::warn("spam: refreshing the active model: {}", s.ToString());
      }
      readiness.Set("spam", true);
    }
    if (bandit_service) {
      // Expires pulls whose window ended, applies stop rules, snapshots when due.
      const Status s = bandit_service->Tick();
      if (!s.ok()) {
        spdlog::warn("bandit: {}", s.ToString());
      }
      readiness.Set("bandit", s.ok(), std::string(s.message()));
    }
  };
  update_readiness();

  auto server = http::Server::Start(*server_options, router, registry);
  if (!server.ok()) {
    return Fail(kExitFailure, server.status());
  }
  spdlog::info("evo {} listening on http://{}:{} (modules: {})", EVO_VERSION,
               server_options->listen.substr(0, server_options->listen.rfind(':')),
               (*server)->port(), config.modules);

  // The main thread runs background work (readiness, spam model refresh, bandit expiry and
  // snapshots): it yields the CPU to the I/O threads, which already exist and keep their
  // priority. Per-thread on Linux.
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10) != 0) {
    spdlog::debug("could not lower the main thread's priority");
  }

  // The main thread only waits for a shutdown signal, refreshing readiness meanwhile.
  const timespec tick{0, 200'000'000};
  int received = 0;
  while (received <= 0) {
    received = sigtimedwait(&signals, nullptr, &tick);
    update_readiness();
  }
  spdlog::info("received {}, draining (up to {} ms)", received == SIGTERM ? "SIGTERM" : "SIGINT",
               shutdown_timeout->count());
  readiness.SetDraining();
  if (broker) {
    // Long polls are answered now (and new ones at once): their connections end, so the
    // drain below waits only for real work, not for a poll's 20 s.
    broker->EndLongPolls();
  }
  (*server)->Drain(*shutdown_timeout);
  if (webhooks_service) {
    // Deliveries in flight get a moment to finish; the rest come back from their queues.
    webhooks_service->Stop();
  }
  if (broker) {
    // Finishes the writes in hand (their answers still reach the I/O threads while the
    // server's threads run) and stops the writer.
    broker->Stop();
  }
  (*server)->Stop();
  if (bandit_service) {
    if (const Status s = bandit_service->Snapshot(); !s.ok()) {
      spdlog::warn("bandit: final snapshot: {} (the journal still holds everything)", s.ToString());
    }
  }
  spdlog::info("stopped");
  logging::Shutdown();
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "evo: unique IDs, notifications, webhooks, bandits, spam filtering and event pages in "
      "one fast binary.\nEvery option is also an EVO_* environment variable and a key in the "
      "--config TOML file.",
      "evo"};
  app.set_version_flag("--version", EVO_VERSION);
  app.footer(
      "Examples:\n"
      "  evo serve                                   # http://127.0.0.1:8080, data in ./data\n"
      "  evo serve --listen 0.0.0.0:8080 --data-dir /var/lib/evo --log-format json\n"
      "  evo id new -n 5 --format base32\n"
      "  evo id decode 252374177380564992\n"
      "  evo id layout --id-tick 10ms --id-sequence-bits 8 --id-timestamp-bits 39 "
      "--id-worker-bits 16\n"
      "  evo spam train ./enron1 && evo spam classify message.eml\n"
      "  evo spam eval ./enron1                      # fixed split + 10-fold CV\n"
      "  evo bandit simulate --runs 20 --horizon 10000");
  app.require_subcommand(1);
  app.fallthrough();
  Config config;
  AddFlags(app, config);

  auto* serve = app.add_subcommand(
      "serve", "Run the HTTP API on embedded storage until SIGTERM, then drain and exit 0");
  serve->footer("All options (listen, data-dir, ids, logging...) are listed by `evo --help`.");

  cli::Commands commands;
  commands.Add(serve, [&config] { return Serve(config); });
  // Each module's commands, in the order `evo --help` lists them. What they take of the
  // configuration is read when a command runs, after parsing.
  ids::RegisterCli(
      app, commands,
      {.options = [&config] { return ToIdOptions(config); },
       .open_generator = [&config](const Clock& clock) { return OpenGenerator(config, clock); }});
  spam::RegisterCli(app, commands,
                    {.options = [&config] { return ToSpamOptions(config); },
                     .model_name = [&config] { return config.spam_model; },
                     .open_database = [&config] { return OpenDatabase(config); },
                     .lock_data_dir = [&config] { return LockDataDir(config); }});
  bandit::RegisterCli(app, commands);
  queue::RegisterCli(app, commands,
                     {.data_dir = [&config] { return config.data_dir; },
                      .broker_path = [&config] { return QueuePath(config); },
                      .lock_data_dir = [&config] { return LockDataDir(config); }});
  webhooks::RegisterCli(app, commands);
  auth::RegisterCli(app, commands, {.open_database = [&config] { return OpenDatabase(config); }});

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" that exit 0; every real parse error (unknown flag,
    // missing subcommand, bad value) is a usage error: 2, as README's exit codes say, instead
    // of CLI11's own codes (105, 106, 109...).
    const int code = app.exit(e);
    return code == 0 ? cli::kExitOk : cli::kExitUsage;
  }
  return commands.Run();
}

}  // namespace
}  // namespace evo::app

int main(int argc, char** argv) { return evo::app::Main(argc, argv); }
