#include "auth/cli.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/keys.hpp"
#include "core/clock.hpp"

namespace evo::auth {
namespace {

using cli::ExitCodeFor;
using cli::Fail;

// The flags of every `evo keys` command (each command reads the ones it has).
struct Args {
  std::string name;
  std::vector<std::string> scopes;
  std::string expires;
  std::string application;
  std::string id;
  std::string format = "text";
};

// The store on the server's database; `db` is declared first so that it outlives the store.
struct Opened {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<KeyStore> keys;
};

StatusOr<Opened> OpenKeys(const CliDeps& deps) {
  Opened opened;
  EVO_ASSIGN_OR_RETURN(opened.db, deps.open_database());
  EVO_ASSIGN_OR_RETURN(opened.keys, KeyStore::Open(*opened.db, RealClock()));
  return opened;
}

std::string Time(const std::optional<Clock::WallTime>& t) {
  return t.has_value() ? FormatTimestamp(*t) : "-";
}

// Names come from the database, which another writer may have filled with invalid UTF-8:
// replace it rather than let dump() throw.
std::string Dump(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json ToJson(const KeyInfo& info) {
  nlohmann::json j = {{"id", info.id},
                      {"name", info.name},
                      {"scopes", info.scopes},
                      {"hint", info.hint},
                      {"createdAt", FormatTimestamp(info.created_at)}};
  j["application"] = info.application.has_value() ? nlohmann::json(*info.application) : nullptr;
  j["expiresAt"] = info.expires_at.has_value() ? nlohmann::json(Time(info.expires_at)) : nullptr;
  j["revokedAt"] = info.revoked_at.has_value() ? nlohmann::json(Time(info.revoked_at)) : nullptr;
  return j;
}

std::string JoinScopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const std::string& s : scopes) {
    out += (out.empty() ? "" : ",") + s;
  }
  return out;
}

void PrintHeader(std::FILE* out) {
  std::fprintf(out, "%-20s %-24s %-24s %-24s %-24s %-6s %s\n", "ID", "NAME", "CREATED", "EXPIRES",
               "REVOKED", "HINT", "SCOPES");
}

void PrintRow(std::FILE* out, const KeyInfo& info) {
  std::string scopes = JoinScopes(info.scopes);
  if (info.application.has_value()) {
    scopes += " (application " + *info.application + ")";
  }
  std::fprintf(out, "%-20s %-24s %-24s %-24s %-24s ...%-3s %s\n", info.id.c_str(),
               info.name.c_str(), FormatTimestamp(info.created_at).c_str(),
               Time(info.expires_at).c_str(), Time(info.revoked_at).c_str(), info.hint.c_str(),
               scopes.c_str());
}

int CreateCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  KeySpec spec;
  spec.name = args.name;
  spec.scopes = args.scopes;
  if (!args.expires.empty()) {
    auto lifetime = ParseLifetime(args.expires);
    if (!lifetime.ok()) {
      return Fail(cli::kExitUsage,
                  InvalidArgumentError("--expires: " + std::string(lifetime.status().message())));
    }
    spec.expires_in = *lifetime;
  }
  if (!args.application.empty()) {
    spec.application = args.application;
  }
  auto opened = OpenKeys(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  auto created = opened->keys->Create(spec);
  if (!created.ok()) {
    return Fail(ExitCodeFor(created.status()), created.status());
  }
  if (args.format == "json") {
    nlohmann::json j = ToJson(created->info);
    j["key"] = created->key;
    std::printf("%s\n", Dump(j).c_str());
    return 0;
  }
  std::printf("%s\n", created->key.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "The key above is shown this once; only its hash is stored.\n");
  PrintHeader(stderr);
  PrintRow(stderr, created->info);
  return 0;
}

int LsCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto opened = OpenKeys(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  auto all = opened->keys->List();
  if (!all.ok()) {
    return Fail(ExitCodeFor(all.status()), all.status());
  }
  if (args.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const KeyInfo& info : *all) {
      out.push_back(ToJson(info));
    }
    std::printf("%s\n", Dump(out).c_str());
    return 0;
  }
  PrintHeader(stdout);
  for (const KeyInfo& info : *all) {
    PrintRow(stdout, info);
  }
  return 0;
}

int RevokeCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto opened = OpenKeys(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  auto revoked = opened->keys->Revoke(args.id);
  if (!revoked.ok()) {
    return Fail(ExitCodeFor(revoked.status()), revoked.status());
  }
  if (args.format == "json") {
    std::printf("%s\n", Dump(ToJson(*revoked)).c_str());
    return 0;
  }
  std::printf("revoked %s (%s) at %s; a running server refuses it within a second\n",
              revoked->id.c_str(), revoked->name.c_str(), Time(revoked->revoked_at).c_str());
  return 0;
}

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps) {
  auto* keys = app.add_subcommand(
      "keys", "Create, list and revoke API keys (on --data-dir, beside a running server too)");
  keys->require_subcommand(1);
  const CliDeps& kept = commands.Keep(std::move(deps));
  Args& args = commands.Keep(Args{});

  auto* create = keys->add_subcommand(
      "create", "Make an API key and print it, once, on its own line (the record on stderr)");
  create->add_option("--name", args.name, "What the key is for (shown by ls)")->required();
  create
      ->add_option("--scope", args.scopes,
                   "A scope the key grants: MODULE:read, MODULE:write or admin (repeat)")
      ->required();
  create->add_option("--expires", args.expires, "Lifetime, e.g. 90m, 12h, 30d, 2w (default: none)");
  create->add_option("--application", args.application,
                     "Limit the key to this webhooks application");
  cli::AddFormatOption(*create, args.format);
  commands.Add(create, [&kept, &args] { return CreateCommand(kept, args); });

  auto* ls = keys->add_subcommand("ls", "List API keys (never their secrets)");
  cli::AddFormatOption(*ls, args.format);
  commands.Add(ls, [&kept, &args] { return LsCommand(kept, args); });

  auto* revoke = keys->add_subcommand("revoke", "Revoke an API key for good");
  revoke->add_option("id", args.id, "Key id (key_...)")->required();
  cli::AddFormatOption(*revoke, args.format);
  commands.Add(revoke, [&kept, &args] { return RevokeCommand(kept, args); });
}

}  // namespace evo::auth
