// CLI adapter of the ids module: `evo id new | decode | layout`.
#pragma once

#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"
#include "core/clock.hpp"
#include "core/status.hpp"
#include "ids/ids.hpp"

namespace evo::ids {

// What the `evo id` commands need from the composition root. Both are called only after
// parsing, by the commands that need them.
struct CliDeps {
  // The options given by flags, EVO_* variables and the config file; InvalidArgument naming
  // the flag for a bad value.
  std::function<StatusOr<Options>()> options;
  // A generator opened as `evo serve` opens it (leasing a worker id in the data dir), so
  // that IDs issued by the CLI never collide with the server's. `clock` must outlive it.
  std::function<StatusOr<std::unique_ptr<Generator>>(const Clock& clock)> open_generator;
};

// Adds the `id` subcommand and its commands to `app` and their actions to `commands`.
void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps);

}  // namespace evo::ids
