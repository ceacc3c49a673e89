// evo: the composition root. The only file that knows every module; it turns configuration
// into each module's options, wires modules to the HTTP server, and owns start-up and
// shutdown order (reverse of start-up).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app/config.hpp"
#include "core/clock.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "http/operational.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "ids/http.hpp"
#include "ids/ids.hpp"

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

  metrics::Registry registry;
  http::Readiness readiness;
  http::Router router;
  http::RegisterOperationalRoutes(router, readiness, registry, EVO_VERSION);
  registry.AddGauge("evo_build_info", "Always 1, labelled with the running version.", {"version"})
      .Get({EVO_VERSION})
      .Set(1);

  std::optional<IdsModule> ids_module;
  for (const std::string& name : *modules) {
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
  // Readiness of each module is re-evaluated by the main loop below.
  auto update_readiness = [&] {
    if (ids_module) {
      const Status s = ids_module->generator->Ready();
      readiness.Set("ids", s.ok(), std::string(s.message()));
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
  (*server)->Stop();
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
      "--id-worker-bits 16");
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
  return kExitUsage;
}

}  // namespace
}  // namespace evo::app

int main(int argc, char** argv) { return evo::app::Main(argc, argv); }
