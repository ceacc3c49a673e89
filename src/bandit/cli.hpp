// CLI adapter of the bandit module: `evo bandit simulate` (simulate.hpp, in process; it
// needs no data dir and no server).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"

namespace evo::bandit {

// Adds the `bandit` subcommand and its commands to `app` and their actions to `commands`.
void RegisterCli(CLI::App& app, cli::Commands& commands);

}  // namespace evo::bandit
