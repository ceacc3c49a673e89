// evo: the composition root. The only file that knows every module; it turns configuration
// into each module's options, wires modules to the HTTP server, and owns start-up and
// shutdown order (reverse of start-up).
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app/config.hpp"
#include "bandit/bandit.hpp"
#include "bandit/http.hpp"
#include "bandit/simulate.hpp"
#include "core/clock.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "http/operational.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "ids/http.hpp"
#include "ids/ids.hpp"
#include "outbound/client.hpp"
#include "queue/http.hpp"
#include "queue/queue.hpp"
#include "spam/http.hpp"
#include "spam/spam.hpp"
#include "store/store.hpp"
#include "webhooks/http.hpp"
#include "webhooks/listen.hpp"
#include "webhooks/webhooks.hpp"

#ifndef EVO_VERSION
#define EVO_VERSION "0.0.0"
#endif

namespace evo::app {
namespace {

constexpr int kExitUsage = 2;    // bad configuration or arguments
constexpr int kExitFailure = 1;  // could not start or run

int Fail(int code, const Status& status) {
  std::fprintf(stderr, "evo: %s\n", std::string(status.message()).c_str());
  return code;
}

// The ids module's pieces, opened from the data dir: lease, mark file, generator.
struct IdsModule {
  std::unique_ptr<MonotonicWallClock> clock;
  std::unique_ptr<ids::Generator> generator;
  std::unique_ptr<ids::Uuid7Generator> uuids;
  std::unique_ptr<ids::UlidGenerator> ulids;
};

StatusOr<IdsModule> OpenIds(const Config& config) {
  EVO_ASSIGN_OR_RETURN(ids::Options options, ToIdOptions(config));
  const std::filesystem::path dir = std::filesystem::path(config.data_dir) / "ids";
  EVO_ASSIGN_OR_RETURN(auto lease,
                       ids::AcquireFileLease(dir, config.worker_id, options.layout.MaxWorkerId()));
  const int64_t worker = lease->worker_id();
  auto marks = ids::FileMarkStore(dir / ("worker-" + std::to_string(worker) + ".mark"));
  IdsModule m;
  // Elapsed time comes from the monotonic clock while running (see MonotonicWallClock).
  m.clock = std::make_unique<MonotonicWallClock>(RealClock());
  EVO_ASSIGN_OR_RETURN(m.generator,
                       ids::Generator::Open(options, *m.clock, std::move(lease), std::move(marks)));
  m.uuids = std::make_unique<ids::Uuid7Generator>(*m.clock);
  m.ulids = std::make_unique<ids::UlidGenerator>(*m.clock);
  return m;
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

int ExitCodeFor(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound
             ? kExitUsage
             : kExitFailure;
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
      spam::RegisterRoutes(router, *spam_module->service, registry);
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
      queue::RegisterRoutes(router, *broker);
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
  // Readiness of each module is re-evaluated by the main loop below.
  auto update_readiness = [&] {
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
  (*server)->Drain(*shutdown_timeout);
  if (webhooks_service) {
    // Deliveries in flight get a moment to finish; the rest come back from their queues.
    webhooks_service->Stop();
  }
  if (broker) {
    // Finishes the writes in hand (their answers still reach the I/O threads) and answers
    // long polls, before the server's threads stop.
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

// ---- evo id ... -------------------------------------------------------------------------

int IdNew(const Config& config, int count, const std::string& format_name) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto format = ids::ParseFormat(format_name);
  if (!format.ok()) {
    return Fail(kExitUsage, Status(StatusCode::kInvalidArgument,
                                   "--format: " + std::string(format.status().message())));
  }
  if (count < 1 || count > 1'000'000) {
    return Fail(kExitUsage, InvalidArgumentError("-n: must be 1..1000000"));
  }
  auto opened = OpenIds(config);
  if (!opened.ok()) {
    return Fail(opened.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure,
                opened.status());
  }
  auto batch = opened->generator->NextBatch(static_cast<size_t>(count));
  if (!batch.ok()) {
    return Fail(kExitFailure, batch.status());
  }
  std::string out;
  for (ids::Id id : *batch) {
    out += ids::Encode(id, *format);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int IdDecode(const Config& config, const std::vector<std::string>& texts) {
  auto options = ToIdOptions(config);
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  int rc = 0;
  for (const std::string& text : texts) {
    auto id = ids::DecodeAnyText(text);
    if (!id.ok()) {
      std::fprintf(stderr, "evo: %s: %s\n", text.c_str(),
                   std::string(id.status().message()).c_str());
      rc = kExitUsage;
      continue;
    }
    const ids::Decoded d = ids::Decode(options->layout, *id);
    std::printf("%s\tid=%llu timestamp=%s worker=%lld sequence=%lld base32=%s hex=%s\n",
                text.c_str(), static_cast<unsigned long long>(d.id),
                FormatTimestamp(Clock::WallTime(std::chrono::milliseconds(d.unix_millis))).c_str(),
                static_cast<long long>(d.worker_id), static_cast<long long>(d.sequence),
                ids::Encode(d.id, ids::Format::kBase32).c_str(),
                ids::Encode(d.id, ids::Format::kHex).c_str());
  }
  return rc;
}

int IdLayout(const Config& config) {
  auto options = ToIdOptions(config);
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  const ids::Layout& l = options->layout;
  std::printf("layout:     0 | %d bits timestamp | %d bits worker | %d bits sequence\n",
              l.timestamp_bits, l.worker_bits, l.sequence_bits);
  std::printf("tick:       %lld ms\n", static_cast<long long>(l.tick.count()));
  std::printf("epoch:      %s\n", FormatTimestamp(l.epoch).c_str());
  const long long max_worker = l.MaxWorkerId();
  std::printf("workers:    %lld (ids 0..%lld)\n", max_worker + 1, max_worker);
  std::printf("capacity:   %.0f IDs/s per worker, %.0f IDs/s in all\n", l.CapacityPerSecond(),
              l.CapacityPerSecond() * static_cast<double>(l.MaxWorkerId() + 1));
  std::printf("runs out:   %s\n", FormatTimestamp(l.Exhausted()).c_str());
  return 0;
}

// ---- evo spam ... -----------------------------------------------------------------------

struct SpamCli {
  std::string directory;
  std::vector<std::string> files;
  std::string format = "text";
  bool activate = false;
  int folds = 10;
  int64_t version = 0;
};

void PrintMetricsLine(const char* label, const nlohmann::json& m) {
  std::printf(
      "%-14s accuracy %.2f%%  spam recall %.2f%%  ham recall %.2f%%  precision %.2f%%  "
      "F1 %.4f  ROC AUC %.5f\n%-14s spam recall at ham recall 99.5%%: %.2f%%, at 99.9%%: "
      "%.2f%%  (false positives %d, false negatives %d, unsure %d)\n",
      label, 100 * m["accuracy"].get<double>(), 100 * m["spam_recall"].get<double>(),
      100 * m["ham_recall"].get<double>(), 100 * m["precision"].get<double>(),
      m["f1"].get<double>(), m["roc_auc"].get<double>(), "",
      100 * m["spam_recall_at_ham_99_5"].get<double>(),
      100 * m["spam_recall_at_ham_99_9"].get<double>(), m["false_positives"].get<int>(),
      m["false_negatives"].get<int>(), m["unsure"].get<int>());
}

int SpamTrain(const Config& config, const SpamCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto corpus = spam::LoadCorpus(cli.directory);
  if (!corpus.ok()) {
    return Fail(ExitCodeFor(corpus.status()), corpus.status());
  }
  auto opened = OpenSpam(config);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  spam::TrainRequest request;
  request.messages = std::move(*corpus);
  request.activate = cli.activate;
  auto info = opened->service->Train(request);
  if (!info.ok()) {
    return Fail(ExitCodeFor(info.status()), info.status());
  }
  if (cli.format == "json") {
    std::printf("%s\n", spam::ToJson(*info).dump(2).c_str());
    return 0;
  }
  std::printf(
      "model version %lld (%s), %lld messages (%lld spam, %lld ham), %lld features, "
      "trained in %.2f s%s\n",
      static_cast<long long>(info->version), info->family.c_str(),
      static_cast<long long>(info->messages), static_cast<long long>(info->spam),
      static_cast<long long>(info->ham), static_cast<long long>(info->features),
      info->train_seconds, info->active ? ", active" : " (not active: use --activate)");
  PrintMetricsLine("cross-valid.:", info->metrics["crossValidation"]);
  if (const auto skipped = info->metrics.find("skipped"); skipped != info->metrics.end()) {
    std::printf(
        "skipped %lld file(s) that are not messages, e.g. %s\n",
        static_cast<long long>((*skipped)["count"].get<int64_t>()),
        (*skipped)["files"].empty() ? "" : (*skipped)["files"][0].get<std::string>().c_str());
  }
  return 0;
}

// The bytes of a message file ("-" = stdin). Not through istreambuf_iterator: libstdc++
// throws from it when read() fails (a directory gives EISDIR), which would abort.
StatusOr<std::string> ReadMessageFile(const std::string& file) {
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::error_code ec;
  const auto type = std::filesystem::status(file, ec).type();
  if (type == std::filesystem::file_type::not_found) {
    return NotFoundError(file + ": cannot read: no such file");
  }
  if (ec) {
    return FailedPreconditionError(file + ": cannot read: " + ec.message());
  }
  if (type != std::filesystem::file_type::regular) {
    return InvalidArgumentError(file + ": cannot read: not a regular file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return FailedPreconditionError(file + ": cannot read");
  }
  text << in.rdbuf();  // an empty file inserts nothing: Classify then says the text is empty
  return text.str();
}

int SpamClassify(const Config& config, const SpamCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto opened = OpenSpam(config);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  int rc = 0;
  for (const std::string& file : cli.files) {
    auto text = ReadMessageFile(file);
    if (!text.ok()) {
      std::fprintf(stderr, "evo: %s\n", std::string(text.status().message()).c_str());
      rc = kExitUsage;
      continue;
    }
    auto verdict = opened->service->Classify(*text);
    if (!verdict.ok()) {
      std::fprintf(stderr, "evo: %s: %s\n", file.c_str(),
                   std::string(verdict.status().message()).c_str());
      if (verdict.status().GetPayload(kPayloadReason) == "NO_MODEL") {
        return kExitFailure;
      }
      rc = kExitUsage;
      continue;
    }
    if (cli.format == "json") {
      nlohmann::json tokens = nlohmann::json::array();
      for (const auto& t : verdict->top_tokens) {
        tokens.push_back({{"token", t.token}, {"weight", t.weight}});
      }
      std::printf("%s\n", nlohmann::json({{"file", file},
                                          {"label", verdict->spam ? "spam" : "ham"},
                                          {"probability", verdict->probability},
                                          {"unsure", verdict->unsure},
                                          {"modelVersion", verdict->version},
                                          {"topTokens", tokens}})
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
      continue;
    }
    std::string why;
    for (const auto& t : verdict->top_tokens) {
      why += (why.empty() ? "" : ", ") + t.token + (t.weight > 0 ? " +" : " -");
    }
    std::printf("%s\t%s\t%.4f%s\t%s\n", file.c_str(), verdict->spam ? "spam" : "ham",
                verdict->probability, verdict->unsure ? "\tunsure" : "", why.c_str());
  }
  return rc;
}

int SpamEval(const Config& config, const SpamCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto options = ToSpamOptions(config);
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  if (cli.folds < 0 || cli.folds > 20 || cli.folds == 1) {
    return Fail(kExitUsage, InvalidArgumentError("--folds: 0 (none) or 2..20"));
  }
  auto corpus = spam::LoadCorpus(cli.directory);
  if (!corpus.ok()) {
    return Fail(ExitCodeFor(corpus.status()), corpus.status());
  }
  spam::TrainingOptions training;
  training.model.family = options->family;
  training.folds = options->calibration_folds;
  auto e = spam::Evaluate(*corpus, training, options->unsure, cli.folds);
  if (!e.ok()) {
    return Fail(ExitCodeFor(e.status()), e.status());
  }
  const nlohmann::json j = spam::ToJson(*e);
  if (cli.format == "json") {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf(
      "split: sha256(basename) first 8 hex digits mod 10 < 3 is test: %zu train, %zu "
      "test (%zu spam, %zu ham); model %s\n",
      e->train_messages, e->test.spam + e->test.ham, e->test.spam, e->test.ham,
      config.spam_model.c_str());
  PrintMetricsLine("test split:", j["test"]);
  if (cli.folds > 0) {
    std::string folds;
    for (double a : e->fold_accuracy) {
      folds += fmt::format("{}{:.2f}", folds.empty() ? "" : " ", 100 * a);
    }
    std::printf("%d-fold CV:     mean accuracy %.2f%% (folds: %s)\n", cli.folds,
                100 * e->cv_mean_accuracy, folds.c_str());
    PrintMetricsLine("CV pooled:", j["cv"]["pooled"]);
  }
  std::printf(
      "speed:         training %.3f s on %zu messages; classification %.0f msg/s (one "
      "thread, parse + tokenise + score)\n",
      e->train_seconds, e->train_messages, e->classify_msgs_per_sec);
  return 0;
}

int SpamModels(const Config& config, const SpamCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto opened = OpenSpam(config);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  auto models = opened->service->List();
  if (!models.ok()) {
    return Fail(kExitFailure, models.status());
  }
  if (cli.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : *models) {
      out.push_back(spam::ToJson(m));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (models->empty()) {
    std::printf("no spam models yet: train one with `evo spam train DIR`\n");
    return 0;
  }
  std::printf("%-8s %-7s %-6s %-20s %9s %9s %9s %8s %9s\n", "VERSION", "ACTIVE", "FAMILY",
              "CREATED", "MESSAGES", "FEATURES", "FEEDBACK", "CV ACC", "TRAIN S");
  for (const auto& m : *models) {
    const double acc = m.metrics.contains("crossValidation")
                           ? m.metrics["crossValidation"].value("accuracy", 0.0)
                           : 0.0;
    std::printf("%-8lld %-7s %-6s %-20s %9lld %9lld %9lld %7.2f%% %9.2f\n",
                static_cast<long long>(m.version), m.active ? "*" : "", m.family.c_str(),
                m.created_at.substr(0, 19).c_str(), static_cast<long long>(m.messages),
                static_cast<long long>(m.features), static_cast<long long>(m.feedback), 100 * acc,
                m.train_seconds);
  }
  return 0;
}

int SpamActivate(const Config& config, const SpamCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  if (cli.version < 1) {
    return Fail(kExitUsage, InvalidArgumentError("version: must be a positive integer, got " +
                                                 std::to_string(cli.version)));
  }
  auto opened = OpenSpam(config);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  if (Status s = opened->service->Activate(cli.version); !s.ok()) {
    return Fail(ExitCodeFor(s), s);
  }
  std::printf("spam model version %lld is active\n", static_cast<long long>(cli.version));
  return 0;
}

// ---- evo queue ... ----------------------------------------------------------------------

struct QueueCli {
  std::string name;
  std::string format = "text";
  bool redrive = false;
  bool purge = false;
  std::string error_contains;
  int limit = 50;
};

// The broker for the CLI: read-only unless it must write (redrive, purge). It never issues
// message ids, so it takes no worker lease.
StatusOr<std::unique_ptr<queue::Broker>> OpenCliBroker(const Config& config, bool write) {
  if (!std::filesystem::exists(QueuePath(config))) {
    return NotFoundError("no queues in " + config.data_dir + " (" + QueuePath(config).string() +
                         " does not exist)");
  }
  queue::BrokerOptions options;
  options.path = QueuePath(config);
  options.read_only = !write;
  return queue::OpenSqliteBroker(options, RealClock(), [](size_t) {
    return StatusOr<std::vector<queue::MessageId>>(
        FailedPreconditionError("the CLI does not enqueue"));
  });
}

void PrintQueueRow(const queue::QueueStats& s) {
  std::printf("%-24s %10lld %10lld %10lld %10lld %10lld %10.1f\n", s.name.c_str(),
              static_cast<long long>(s.depth), static_cast<long long>(s.ready),
              static_cast<long long>(s.in_flight), static_cast<long long>(s.delayed),
              static_cast<long long>(s.dead_letters), s.oldest_ready_age_seconds);
}
void PrintQueueHeader() {
  std::printf("%-24s %10s %10s %10s %10s %10s %10s\n", "QUEUE", "DEPTH", "READY", "IN-FLIGHT",
              "DELAYED", "DEAD", "OLDEST S");
}

int QueueLs(const Config& config, const QueueCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto broker = OpenCliBroker(config, false);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  auto all = (*broker)->ListQueues();
  if (!all.ok()) {
    return Fail(ExitCodeFor(all.status()), all.status());
  }
  if (cli.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : *all) {
      out.push_back(queue::ToJson(s));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  PrintQueueHeader();
  for (const auto& s : *all) {
    PrintQueueRow(s);
  }
  return 0;
}

int QueueStatsCommand(const Config& config, const QueueCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  auto broker = OpenCliBroker(config, false);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  auto s = (*broker)->Stats(cli.name);
  if (!s.ok()) {
    return Fail(ExitCodeFor(s.status()), s.status());
  }
  if (cli.format == "json") {
    std::printf("%s\n", queue::ToJson(*s).dump(2).c_str());
    return 0;
  }
  PrintQueueHeader();
  PrintQueueRow(*s);
  std::printf(
      "\nmax attempts %d, visibility %.1f s; totals: enqueued %lld, acked %lld, nacked "
      "%lld, dead-lettered %lld, expired leases %lld, redriven %lld\n",
      s->options.max_attempts, static_cast<double>(s->options.default_visibility.count()) / 1000.0,
      static_cast<long long>(s->enqueued_total), static_cast<long long>(s->acked_total),
      static_cast<long long>(s->nacked_total), static_cast<long long>(s->dead_lettered_total),
      static_cast<long long>(s->expired_leases_total), static_cast<long long>(s->redriven_total));
  return 0;
}

int QueueDlq(const Config& config, const QueueCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  if (cli.redrive && cli.purge) {
    return Fail(kExitUsage, InvalidArgumentError("--redrive and --purge exclude each other"));
  }
  if (cli.limit < 1 || cli.limit > 1000) {
    return Fail(kExitUsage, InvalidArgumentError("--limit: must be 1..1000"));
  }
  auto broker = OpenCliBroker(config, cli.redrive || cli.purge);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  queue::DeadLetterFilter filter;
  filter.error_contains = cli.error_contains;
  if (cli.redrive || cli.purge) {
    auto n = cli.redrive ? (*broker)->Redrive(cli.name, filter)
                         : (*broker)->PurgeDeadLetters(cli.name, filter);
    if (!n.ok()) {
      return Fail(ExitCodeFor(n.status()), n.status());
    }
    std::printf("%s %lld dead letters of %s\n", cli.redrive ? "redrove" : "purged",
                static_cast<long long>(*n), cli.name.c_str());
    return 0;
  }
  auto page = (*broker)->ListDeadLetters(cli.name, std::nullopt, static_cast<size_t>(cli.limit));
  if (!page.ok()) {
    return Fail(ExitCodeFor(page.status()), page.status());
  }
  if (cli.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : page->items) {
      out.push_back({{"id", std::to_string(d.id)},
                     {"attempts", d.attempts},
                     {"deadAt", FormatUnixMillis(d.dead_unix_ms)},
                     {"lastError", d.last_error},
                     {"payload", d.payload}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-20s %8s %-24s %s\n", "ID", "ATTEMPTS", "DEAD AT", "LAST ERROR");
  for (const auto& d : page->items) {
    std::printf("%-20llu %8d %-24s %s\n", static_cast<unsigned long long>(d.id), d.attempts,
                FormatUnixMillis(d.dead_unix_ms).c_str(), d.last_error.c_str());
  }
  if (page->next_after) {
    std::printf("(more: raise --limit, or page through GET /v1/queues/%s/dead-letters)\n",
                cli.name.c_str());
  }
  return 0;
}

// ---- evo webhooks ... -------------------------------------------------------------------

int WebhooksListen(const webhooks::ListenOptions& options) {
  (void)logging::Init(logging::Options{"text", "warn"});
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto listener = webhooks::Listener::Start(options);
  if (!listener.ok()) {
    return Fail(ExitCodeFor(listener.status()), listener.status());
  }
  std::fprintf(
      stderr, "evo webhooks listen: receiving on port %u (%s); GET /stats counts\n",
      (*listener)->port(),
      options.secrets.empty() ? "signatures not checked: no --secret" : "verifying signatures");
  int received = 0;
  while (received <= 0) {
    received = sigwaitinfo(&signals, nullptr);
  }
  (*listener)->Stop();
  std::fprintf(stderr, "%s\n", (*listener)->StatsJson().c_str());
  return 0;
}

// A request to a running evo server for the CLI; prints the answer (pretty JSON) and returns
// the exit code: 0 for 2xx, 1 otherwise (the problem detail on stderr).
int CallServer(const std::string& server, std::string method, const std::string& path,
               std::string body) {
  outbound::ClientOptions options;
  // The CLI talks to the user's own server, usually on loopback: no SSRF guard.
  options.ssrf.allow = {outbound::ParseCidr("0.0.0.0/0").value(),
                        outbound::ParseCidr("::/0").value()};
  options.max_body_bytes = 64 << 20;
  auto client = outbound::Client::Start(options);
  if (!client.ok()) {
    return Fail(kExitFailure, client.status());
  }
  outbound::Request request;
  request.method = std::move(method);
  request.url = server + path;
  request.timeout = std::chrono::seconds(30);
  if (!body.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::move(body);
  }
  std::promise<outbound::Response> answer;
  (*client)->Send(std::move(request),
                  [&answer](outbound::Response r) { answer.set_value(std::move(r)); });
  outbound::Response r = answer.get_future().get();
  (*client)->Stop();
  if (!r.error.ok()) {
    return Fail(kExitFailure, Status(r.error.code(),
                                     "calling " + server + ": " + std::string(r.error.message())));
  }
  const nlohmann::json parsed = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status < 200 || r.status > 299) {
    std::fprintf(stderr, "evo: %d %s\n", r.status,
                 parsed.is_object() ? parsed.value("detail", r.body).c_str() : r.body.c_str());
    return kExitFailure;
  }
  std::printf("%s\n", parsed.is_discarded() ? r.body.c_str() : parsed.dump(2).c_str());
  return 0;
}

struct WebhooksCli {
  std::string server = "http://127.0.0.1:8080";
  std::string create;
  std::string description;
  std::string schema_file;
  std::vector<std::string> event_types;
  bool no_verify = false;
  std::string event_type;
  std::string endpoint;
  std::string message;
  std::string payload;
  std::string event_id;
};

std::string Query(const std::string& name, const std::string& value) {
  std::string out;
  for (char c : value) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return "?" + name + "=" + out;
}

int WebhooksCommand(const std::string& what, const WebhooksCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  using nlohmann::json;
  if (what == "event-types") {
    if (cli.create.empty()) {
      return CallServer(cli.server, "GET", "/v1/event-types?pageSize=1000", "");
    }
    json body = {{"name", cli.create}, {"description", cli.description}};
    if (!cli.schema_file.empty()) {
      std::ifstream in(cli.schema_file);
      const json schema = json::parse(in, nullptr, false);
      if (!in || schema.is_discarded()) {
        return Fail(kExitUsage, InvalidArgumentError("--schema: not a readable JSON file"));
      }
      body["schema"] = schema;
    }
    return CallServer(cli.server, "POST", "/v1/event-types", body.dump());
  }
  if (what == "endpoints") {
    if (cli.create.empty()) {
      return CallServer(cli.server, "GET", "/v1/endpoints?pageSize=1000", "");
    }
    json body = {{"url", cli.create}, {"verify", !cli.no_verify}};
    if (!cli.event_types.empty()) {
      body["eventTypes"] = cli.event_types;
    }
    return CallServer(cli.server, "POST", "/v1/endpoints", body.dump());
  }
  if (what == "messages") {
    return CallServer(cli.server, "GET",
                      cli.event_type.empty() ? "/v1/messages"
                                             : "/v1/messages" + Query("eventType", cli.event_type),
                      "");
  }
  if (what == "attempts") {
    if (cli.endpoint.empty() == cli.message.empty()) {
      return Fail(kExitUsage, InvalidArgumentError("give exactly one of --endpoint, --message"));
    }
    return CallServer(cli.server, "GET",
                      cli.endpoint.empty() ? "/v1/messages/" + cli.message + "/attempts"
                                           : "/v1/endpoints/" + cli.endpoint + "/attempts",
                      "");
  }
  // publish
  const json payload = json::parse(cli.payload, nullptr, false);
  if (payload.is_discarded()) {
    return Fail(kExitUsage, InvalidArgumentError("PAYLOAD: not JSON"));
  }
  json body = {{"eventType", cli.event_type}, {"payload", payload}};
  if (!cli.event_id.empty()) {
    body["eventId"] = cli.event_id;
  }
  return CallServer(cli.server, "POST", "/v1/messages", body.dump());
}

// ---- evo bandit ... ---------------------------------------------------------------------

struct BanditCli {
  int runs = 100;
  int64_t horizon = 100000;
  uint64_t seed = 1;
  int threads = 0;
  std::vector<std::string> policies;
  std::string format = "text";
  bool quiet = false;
};

int BanditSimulate(const BanditCli& cli) {
  (void)logging::Init(logging::Options{"text", "warn"});
  bandit::SimulateOptions o;
  o.runs = cli.runs;
  o.horizon = cli.horizon;
  o.seed = cli.seed;
  o.threads = cli.threads > 0 ? cli.threads
                              : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (const std::string& name : cli.policies) {
    auto type = bandit::ParsePolicyType(name);
    if (!type.ok()) {
      return Fail(kExitUsage, Status(StatusCode::kInvalidArgument,
                                     "--policy: " + std::string(type.status().message())));
    }
    o.policies.push_back(*type);
  }
  if (Status s = bandit::Validate(o); !s.ok()) {
    return Fail(kExitUsage, s);
  }
  if (!cli.quiet && cli.format == "text") {
    o.progress = [](std::string_view line) {
      std::fprintf(stderr, "  %.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  auto report = cli.format == "json" ? bandit::SimulateJson(o) : bandit::SimulateReport(o);
  if (!report.ok()) {
    return Fail(ExitCodeFor(report.status()), report.status());
  }
  std::fwrite(report->data(), 1, report->size(), stdout);
  if (!report->empty() && report->back() != '\n') {
    std::fputc('\n', stdout);
  }
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

  auto* id = app.add_subcommand("id", "Unique IDs from the command line");
  id->require_subcommand(1);
  int count = 1;
  std::string format = "decimal";
  auto* id_new = id->add_subcommand(
      "new", "Issue IDs (leases a worker id in --data-dir like the server does)");
  id_new->add_option("-n,--count", count, "How many IDs")->capture_default_str();
  id_new->add_option("--format", format, "decimal | base32 | hex")->capture_default_str();
  std::vector<std::string> texts;
  auto* id_decode = id->add_subcommand("decode", "Show the fields of IDs (any encoding)");
  id_decode->add_option("ids", texts, "IDs to decode")->required();
  auto* id_layout = id->add_subcommand(
      "layout", "Print the ID layout, capacity per worker and when the timestamp runs out");

  SpamCli spam_cli;
  auto* spam = app.add_subcommand(
      "spam",
      "Spam classification: train, classify, evaluate and list models (data dir's "
      "evo.db)");
  spam->require_subcommand(1);
  const auto add_format = [&](CLI::App* cmd) {
    cmd->add_option("--format", spam_cli.format, "text | json")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
  };
  auto* spam_train = spam->add_subcommand(
      "train", "Train a new model version from DIR/ham and DIR/spam (one message per file)");
  spam_train->add_option("dir", spam_cli.directory, "Corpus directory (Enron layout)")->required();
  spam_train->add_flag("--activate", spam_cli.activate,
                       "Make the new version active (the first one always is)");
  add_format(spam_train);
  auto* spam_classify = spam->add_subcommand(
      "classify",
      "Classify messages (raw RFC 822 or plain text files; - reads stdin) with "
      "the active model");
  spam_classify->add_option("files", spam_cli.files, "Message files")->required();
  add_format(spam_classify);
  auto* spam_eval =
      spam->add_subcommand("eval",
                           "Train on the fixed split of DIR and print test metrics and k-fold "
                           "cross-validation (stores nothing)");
  spam_eval->add_option("dir", spam_cli.directory, "Corpus directory (Enron layout)")->required();
  spam_eval->add_option("--folds", spam_cli.folds, "Cross-validation folds (0 = none)")
      ->capture_default_str();
  add_format(spam_eval);
  auto* spam_models = spam->add_subcommand("models", "List model versions (* = active)");
  add_format(spam_models);
  auto* spam_activate =
      spam->add_subcommand("activate", "Make VERSION the active model (also to roll back)");
  spam_activate->add_option("version", spam_cli.version, "Model version")->required();

  BanditCli bandit_cli;
  auto* bandit_cmd = app.add_subcommand("bandit", "Multi-armed bandits from the command line");
  bandit_cmd->require_subcommand(1);
  auto* bandit_simulate = bandit_cmd->add_subcommand(
      "simulate",
      "Run the policies on the standard Bernoulli instances (seeded, in process) and print "
      "mean regret +- standard error at T = 10^3, 10^4, 10^5 beside the Lai-Robbins bound C ln "
      "T, with rewards 1000 pulls late and with arm means that swap at T/2");
  bandit_simulate->add_option("--runs", bandit_cli.runs, "Seeded runs per cell")
      ->capture_default_str();
  bandit_simulate->add_option("--horizon", bandit_cli.horizon, "Pulls per run (T)")
      ->capture_default_str();
  bandit_simulate->add_option("--seed", bandit_cli.seed, "First seed")->capture_default_str();
  bandit_simulate->add_option("--sim-threads", bandit_cli.threads, "Threads (0 = cores)")
      ->capture_default_str();
  bandit_simulate->add_option("--policy", bandit_cli.policies,
                              "Policies of the stationary table (repeatable; default: all)");
  bandit_simulate->add_option("--format", bandit_cli.format, "text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  bandit_simulate->add_flag("--quiet", bandit_cli.quiet, "No progress lines on stderr");

  QueueCli queue_cli;
  auto* queue_cmd = app.add_subcommand(
      "queue",
      "Inspect durable queues and their dead letters (on --data-dir, beside a running "
      "server too)");
  queue_cmd->require_subcommand(1);
  auto* queue_ls = queue_cmd->add_subcommand("ls", "List queues with depth, in flight, dead");
  queue_ls->add_option("--format", queue_cli.format, "text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  auto* queue_stats = queue_cmd->add_subcommand("stats", "Stats and totals of one queue");
  queue_stats->add_option("name", queue_cli.name, "Queue name")->required();
  queue_stats->add_option("--format", queue_cli.format, "text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  auto* queue_dlq = queue_cmd->add_subcommand(
      "dlq", "List a queue's dead letters, or move them back (--redrive) or delete them (--purge)");
  queue_dlq->add_option("name", queue_cli.name, "Queue name")->required();
  queue_dlq->add_flag("--redrive", queue_cli.redrive, "Move the dead letters back onto the queue");
  queue_dlq->add_flag("--purge", queue_cli.purge, "Delete the dead letters");
  queue_dlq->add_option("--error-contains", queue_cli.error_contains,
                        "Only dead letters whose last error contains this text");
  queue_dlq->add_option("--limit", queue_cli.limit, "Dead letters listed")->capture_default_str();
  queue_dlq->add_option("--format", queue_cli.format, "text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  webhooks::ListenOptions listen_options;
  int listen_port = 9000;
  bool listen_quiet = false;
  auto* webhooks_cmd = app.add_subcommand("webhooks", "Webhook tools");
  webhooks_cmd->require_subcommand(1);
  auto* webhooks_listen = webhooks_cmd->add_subcommand(
      "listen",
      "Receive webhooks locally: verify signatures, answer the verification handshake, "
      "print and count deliveries (GET /stats)");
  webhooks_listen->add_option("--port", listen_port, "Port on 127.0.0.1 (0 = any)")
      ->capture_default_str();
  webhooks_listen->add_option("--secret", listen_options.secrets,
                              "Endpoint secret (whsec_...) or public key (whpk_...); "
                              "repeatable (rotation)");
  webhooks_listen->add_option("--status", listen_options.status,
                              "Answer every delivery with this status (default 204)");
  webhooks_listen->add_option("--fail-first", listen_options.fail_first,
                              "Answer 500 to the first N deliveries");
  webhooks_listen->add_option("--delay-ms", listen_options.delay_ms,
                              "Wait this long before answering");
  webhooks_listen->add_option("--retry-after", listen_options.retry_after_s,
                              "Send Retry-After: S with failure answers");
  webhooks_listen->add_flag("--quiet", listen_quiet, "Count only, print nothing per delivery");
  WebhooksCli wh;
  auto add_server = [&wh](CLI::App* cmd) {
    cmd->add_option("--server", wh.server, "The running evo server")->capture_default_str();
  };
  auto* wh_types = webhooks_cmd->add_subcommand(
      "event-types", "List event types, or create one with --create NAME");
  add_server(wh_types);
  wh_types->add_option("--create", wh.create, "Create this event type");
  wh_types->add_option("--description", wh.description, "Its description");
  wh_types->add_option("--schema", wh.schema_file, "A JSON Schema file for its payload");
  auto* wh_endpoints =
      webhooks_cmd->add_subcommand("endpoints", "List endpoints, or create one with --create URL");
  add_server(wh_endpoints);
  wh_endpoints->add_option("--create", wh.create, "Create an endpoint for this URL");
  wh_endpoints->add_option("--event-type", wh.event_types, "Subscribe to this type (repeatable)");
  wh_endpoints->add_flag("--no-verify", wh.no_verify, "Skip the verification handshake");
  auto* wh_messages = webhooks_cmd->add_subcommand("messages", "List published messages");
  add_server(wh_messages);
  wh_messages->add_option("--event-type", wh.event_type, "Only this type");
  auto* wh_attempts = webhooks_cmd->add_subcommand(
      "attempts", "Delivery attempts of an endpoint (--endpoint) or a message (--message)");
  add_server(wh_attempts);
  wh_attempts->add_option("--endpoint", wh.endpoint, "Endpoint id");
  wh_attempts->add_option("--message", wh.message, "Message id");
  auto* wh_publish = webhooks_cmd->add_subcommand("publish", "Publish an event");
  add_server(wh_publish);
  wh_publish->add_option("type", wh.event_type, "Event type")->required();
  wh_publish->add_option("payload", wh.payload, "Payload (JSON)")->required();
  wh_publish->add_option("--event-id", wh.event_id, "Idempotency key");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (serve->parsed()) {
    return Serve(config);
  }
  if (id_new->parsed()) {
    return IdNew(config, count, format);
  }
  if (id_decode->parsed()) {
    return IdDecode(config, texts);
  }
  if (id_layout->parsed()) {
    return IdLayout(config);
  }
  if (bandit_simulate->parsed()) {
    return BanditSimulate(bandit_cli);
  }
  if (spam_train->parsed()) {
    return SpamTrain(config, spam_cli);
  }
  if (spam_classify->parsed()) {
    return SpamClassify(config, spam_cli);
  }
  if (spam_eval->parsed()) {
    return SpamEval(config, spam_cli);
  }
  if (spam_models->parsed()) {
    return SpamModels(config, spam_cli);
  }
  if (spam_activate->parsed()) {
    return SpamActivate(config, spam_cli);
  }
  if (webhooks_listen->parsed()) {
    if (listen_port < 0 || listen_port > 65535) {
      return Fail(kExitUsage, InvalidArgumentError("--port: 0..65535"));
    }
    listen_options.listen = fmt::format("127.0.0.1:{}", listen_port);
    listen_options.print = !listen_quiet;
    return WebhooksListen(listen_options);
  }
  for (auto [cmd, name] : {std::pair{wh_types, "event-types"}, std::pair{wh_endpoints, "endpoints"},
                           std::pair{wh_messages, "messages"}, std::pair{wh_attempts, "attempts"},
                           std::pair{wh_publish, "publish"}}) {
    if (cmd->parsed()) {
      return WebhooksCommand(name, wh);
    }
  }
  if (queue_ls->parsed()) {
    return QueueLs(config, queue_cli);
  }
  if (queue_stats->parsed()) {
    return QueueStatsCommand(config, queue_cli);
  }
  if (queue_dlq->parsed()) {
    return QueueDlq(config, queue_cli);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace evo::app

int main(int argc, char** argv) { return evo::app::Main(argc, argv); }
