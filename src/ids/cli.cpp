#include "ids/cli.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace evo::ids {
namespace {

using cli::Fail;
using cli::kExitFailure;
using cli::kExitUsage;

struct NewArgs {
  int count = 1;
  std::string format = "decimal";
};

int IdNew(const CliDeps& deps, const NewArgs& args) {
  cli::InitCommandLogging();
  auto format = ParseFormat(args.format);
  if (!format.ok()) {
    return Fail(kExitUsage, Status(StatusCode::kInvalidArgument,
                                   "--format: " + std::string(format.status().message())));
  }
  if (args.count < 1 || args.count > 1'000'000) {
    return Fail(kExitUsage, InvalidArgumentError("-n: must be 1..1000000"));
  }
  // Elapsed time comes from the monotonic clock, as in the server (see MonotonicWallClock).
  const MonotonicWallClock clock(RealClock());
  auto generator = deps.open_generator(clock);
  if (!generator.ok()) {
    // As in `evo serve`: only a bad option exits 2, whatever the lease or mark file says.
    return Fail(
        generator.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure,
        generator.status());
  }
  auto batch = (*generator)->NextBatch(static_cast<size_t>(args.count));
  if (!batch.ok()) {
    return Fail(kExitFailure, batch.status());
  }
  std::string out;
  for (Id id : *batch) {
    out += Encode(id, *format);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int IdDecode(const CliDeps& deps, const std::vector<std::string>& texts) {
  auto options = deps.options();
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  int rc = 0;
  for (const std::string& text : texts) {
    auto id = DecodeAnyText(text);
    if (!id.ok()) {
      std::fprintf(stderr, "evo: %s: %s\n", text.c_str(),
                   std::string(id.status().message()).c_str());
      rc = kExitUsage;
      continue;
    }
    const Decoded d = Decode(options->layout, *id);
    std::printf("%s\tid=%llu timestamp=%s worker=%lld sequence=%lld base32=%s hex=%s\n",
                text.c_str(), static_cast<unsigned long long>(d.id),
                FormatTimestamp(Clock::WallTime(std::chrono::milliseconds(d.unix_millis))).c_str(),
                static_cast<long long>(d.worker_id), static_cast<long long>(d.sequence),
                Encode(d.id, Format::kBase32).c_str(), Encode(d.id, Format::kHex).c_str());
  }
  return rc;
}

int IdLayout(const CliDeps& deps) {
  auto options = deps.options();
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  const Layout& l = options->layout;
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

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps) {
  auto* id = app.add_subcommand("id", "Unique IDs from the command line");
  id->require_subcommand(1);
  const CliDeps& kept = commands.Keep(std::move(deps));
  NewArgs& new_args = commands.Keep(NewArgs{});
  auto* id_new = id->add_subcommand(
      "new", "Issue IDs (leases a worker id in --data-dir like the server does)");
  id_new->add_option("-n,--count", new_args.count, "How many IDs")->capture_default_str();
  id_new->add_option("--format", new_args.format, "decimal | base32 | hex")->capture_default_str();
  commands.Add(id_new, [&kept, &new_args] { return IdNew(kept, new_args); });

  auto& texts = commands.Keep(std::vector<std::string>());
  auto* id_decode = id->add_subcommand("decode", "Show the fields of IDs (any encoding)");
  id_decode->add_option("ids", texts, "IDs to decode")->required();
  commands.Add(id_decode, [&kept, &texts] { return IdDecode(kept, texts); });

  auto* id_layout = id->add_subcommand(
      "layout", "Print the ID layout, capacity per worker and when the timestamp runs out");
  commands.Add(id_layout, [&kept] { return IdLayout(kept); });
}

}  // namespace evo::ids
