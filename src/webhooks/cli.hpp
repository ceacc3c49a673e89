// CLI adapter of the webhooks module: `evo webhooks listen` (a local receiver, listen.hpp)
// and the commands that manage a running server over its API (`event-types`, `endpoints`,
// `messages`, `attempts`, `publish`). None of them opens the data dir.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/cli.hpp"

namespace evo::webhooks {

// Adds the `webhooks` subcommand and its commands to `app` and their actions to `commands`.
void RegisterCli(CLI::App& app, cli::Commands& commands);

}  // namespace evo::webhooks
