// CLI adapter of the spam module: `evo spam train | classify | eval | models | activate`.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"
#include "core/status.hpp"
#include "spam/spam.hpp"
#include "store/data_dir.hpp"
#include "store/store.hpp"

namespace evo::spam {

// What the `evo spam` commands need from the composition root. All are called only after
// parsing, by the commands that need them.
struct CliDeps {
  // The options given by flags, EVO_* variables and the config file; InvalidArgument naming
  // the flag for a bad value.
  std::function<StatusOr<ServiceOptions>()> options;
  // The model family as the user named it (--spam-model), for reports.
  std::function<std::string()> model_name;
  // The database the server keeps its models in, so that the CLI and a running server see
  // the same versions.
  std::function<StatusOr<std::unique_ptr<store::Database>>()> open_database;
  // Takes the data dir's lock (store/data_dir.hpp), for a command that changes what a server
  // keeps there; FailedPrecondition "data dir X is in use by pid N" while one runs.
  std::function<StatusOr<store::DataDirLock>()> lock_data_dir;
};

// Adds the `spam` subcommand and its commands to `app` and their actions to `commands`.
void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps);

}  // namespace evo::spam
