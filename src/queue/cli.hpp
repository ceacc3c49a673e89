// CLI adapter of the queue module: `evo queue ls | stats | dlq`, which read (and, to
// redrive or purge dead letters, write) the broker's file directly, beside a running server
// too.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"
#include "core/status.hpp"
#include "store/data_dir.hpp"

namespace evo::queue {

// What the `evo queue` commands need from the composition root. Both are called only after
// parsing.
struct CliDeps {
  // The data dir as the user gave it (--data-dir), for messages.
  std::function<std::string()> data_dir;
  // The SQLite broker's file in it, the one `evo serve` uses.
  std::function<std::filesystem::path()> broker_path;
  // Takes the data dir's lock (store/data_dir.hpp), for a command that changes what a server
  // keeps there; FailedPrecondition "data dir X is in use by pid N" while one runs.
  std::function<StatusOr<store::DataDirLock>()> lock_data_dir;
};

// Adds the `queue` subcommand and its commands to `app` and their actions to `commands`.
void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps);

}  // namespace evo::queue
