// CLI adapter of the auth module's API keys: `evo keys create | ls | revoke`, which change the
// keys table of the server's database directly. They are allowed beside a running server:
// each is one SQLite transaction, and the server picks the change up at its next
// KeyStore::Refresh (within a second). They do not take the data dir's lock.
#pragma once

#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"
#include "core/status.hpp"
#include "store/store.hpp"

namespace evo::auth {

// What the `evo keys` commands need from the composition root; called only after parsing.
struct CliDeps {
  // The database the server keeps its keys in (<data-dir>/evo.db).
  std::function<StatusOr<std::unique_ptr<store::Database>>()> open_database;
};

// Adds the `keys` subcommand and its commands to `app` and their actions to `commands`.
//
//   evo keys create --name N --scope S [--scope S]... [--expires 30d] [--application ID]
//       prints the key alone on stdout (its only appearance), and the record on stderr;
//       with --format json, one JSON object on stdout holding "key" and the record
//   evo keys ls [--format json]       every key, without secrets
//   evo keys revoke ID [--format json]
void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps);

}  // namespace evo::auth
