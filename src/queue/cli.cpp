#include "queue/cli.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "queue/http.hpp"
#include "queue/queue.hpp"

namespace evo::queue {
namespace {

using cli::ExitCodeFor;
using cli::Fail;
using cli::kExitUsage;

// The flags of every `evo queue` command (each command reads the ones it has).
struct Args {
  std::string name;
  std::string format = "text";
  bool redrive = false;
  bool purge = false;
  std::string error_contains;
  int limit = 50;
};

// The broker for the CLI: read-only unless it must write (redrive, purge). It never issues
// message ids, so it takes no worker lease.
StatusOr<std::unique_ptr<Broker>> OpenCliBroker(const CliDeps& deps, bool write) {
  const std::filesystem::path path = deps.broker_path();
  if (!std::filesystem::exists(path)) {
    return NotFoundError("no queues in " + deps.data_dir() + " (" + path.string() +
                         " does not exist)");
  }
  BrokerOptions options;
  options.path = path;
  options.read_only = !write;
  return OpenSqliteBroker(options, RealClock(), [](size_t) {
    return StatusOr<std::vector<MessageId>>(FailedPreconditionError("the CLI does not enqueue"));
  });
}

void PrintQueueRow(const QueueStats& s) {
  std::printf("%-24s %10lld %10lld %10lld %10lld %10lld %10.1f\n", s.name.c_str(),
              static_cast<long long>(s.depth), static_cast<long long>(s.ready),
              static_cast<long long>(s.in_flight), static_cast<long long>(s.delayed),
              static_cast<long long>(s.dead_letters), s.oldest_ready_age_seconds);
}
void PrintQueueHeader() {
  std::printf("%-24s %10s %10s %10s %10s %10s %10s\n", "QUEUE", "DEPTH", "READY", "IN-FLIGHT",
              "DELAYED", "DEAD", "OLDEST S");
}

int LsCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto broker = OpenCliBroker(deps, false);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  auto all = (*broker)->ListQueues();
  if (!all.ok()) {
    return Fail(ExitCodeFor(all.status()), all.status());
  }
  if (args.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : *all) {
      out.push_back(ToJson(s));
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

int StatsCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto broker = OpenCliBroker(deps, false);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  auto s = (*broker)->Stats(args.name);
  if (!s.ok()) {
    return Fail(ExitCodeFor(s.status()), s.status());
  }
  if (args.format == "json") {
    std::printf("%s\n", ToJson(*s).dump(2).c_str());
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

int DlqCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  if (args.redrive && args.purge) {
    return Fail(kExitUsage, InvalidArgumentError("--redrive and --purge exclude each other"));
  }
  if (args.limit < 1 || args.limit > 1000) {
    return Fail(kExitUsage, InvalidArgumentError("--limit: must be 1..1000"));
  }
  std::optional<store::DataDirLock> lock;
  if (args.redrive || args.purge) {  // a running server redrives and purges through its API
    auto locked = deps.lock_data_dir();
    if (!locked.ok()) {
      return Fail(cli::kExitFailure, locked.status());
    }
    lock.emplace(std::move(*locked));
  }
  auto broker = OpenCliBroker(deps, args.redrive || args.purge);
  if (!broker.ok()) {
    return Fail(ExitCodeFor(broker.status()), broker.status());
  }
  DeadLetterFilter filter;
  filter.error_contains = args.error_contains;
  if (args.redrive || args.purge) {
    auto n = args.redrive ? (*broker)->Redrive(args.name, filter)
                          : (*broker)->PurgeDeadLetters(args.name, filter);
    if (!n.ok()) {
      return Fail(ExitCodeFor(n.status()), n.status());
    }
    std::printf("%s %lld dead letters of %s\n", args.redrive ? "redrove" : "purged",
                static_cast<long long>(*n), args.name.c_str());
    return 0;
  }
  auto page = (*broker)->ListDeadLetters(args.name, std::nullopt, static_cast<size_t>(args.limit));
  if (!page.ok()) {
    return Fail(ExitCodeFor(page.status()), page.status());
  }
  if (args.format == "json") {
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
                args.name.c_str());
  }
  return 0;
}

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps) {
  auto* queue = app.add_subcommand(
      "queue",
      "Inspect durable queues and their dead letters (on --data-dir, beside a running "
      "server too)");
  queue->require_subcommand(1);
  const CliDeps& kept = commands.Keep(std::move(deps));
  Args& args = commands.Keep(Args{});

  auto* ls = queue->add_subcommand("ls", "List queues with depth, in flight, dead");
  cli::AddFormatOption(*ls, args.format);
  commands.Add(ls, [&kept, &args] { return LsCommand(kept, args); });

  auto* stats = queue->add_subcommand("stats", "Stats and totals of one queue");
  stats->add_option("name", args.name, "Queue name")->required();
  cli::AddFormatOption(*stats, args.format);
  commands.Add(stats, [&kept, &args] { return StatsCommand(kept, args); });

  auto* dlq = queue->add_subcommand(
      "dlq", "List a queue's dead letters, or move them back (--redrive) or delete them (--purge)");
  dlq->add_option("name", args.name, "Queue name")->required();
  dlq->add_flag("--redrive", args.redrive, "Move the dead letters back onto the queue");
  dlq->add_flag("--purge", args.purge, "Delete the dead letters");
  dlq->add_option("--error-contains", args.error_contains,
                  "Only dead letters whose last error contains this text");
  dlq->add_option("--limit", args.limit, "Dead letters listed")->capture_default_str();
  cli::AddFormatOption(*dlq, args.format);
  commands.Add(dlq, [&kept, &args] { return DlqCommand(kept, args); });
}

}  // namespace evo::queue
