// The pieces every `evo <module> ...` command shares. Each module's CLI adapter
// (`src/<module>/cli.cpp`, e.g. `queue/cli.cpp` for `evo queue dlq`) adds its subcommands to
// the CLI11 app in its `RegisterCli(CLI::App&, cli::Commands&, ...)`, and pairs each with an
// Action through Commands; `src/app/main.cpp` registers every module, parses the command
// line and runs the one action that was chosen.
//
// Exit codes are the same for every command: 0 success, 1 a runtime failure (could not
// open, read, reach...), 2 bad arguments or configuration.
//
// Thread safety: none needed; all of this runs on the main thread before and after parsing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.hpp"

namespace evo::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // could not start or run
inline constexpr int kExitUsage = 2;    // bad configuration or arguments

// What a command does once the whole command line (flags, EVO_* variables, the --config
// file) has been parsed. Returns the process exit code.
using Action = std::function<int()>;

// The commands of the evo binary and what each runs. Actions run only after parse()
// succeeded, so every global option is in place (they may follow the subcommand) and nothing
// runs for a command line that fails to parse.
//
// A module's RegisterCli binds its flags to variables that CLI11 writes during parsing,
// after RegisterCli has returned, and that the actions read afterwards: Keep() gives them
// (and whatever else the actions need) a home that lives as long as the Commands, so the
// actions may capture them by reference.
class Commands {
 public:
  // Moves `value` into storage owned by this object and returns it; the reference stays
  // valid as long as this object.
  template <typename T>
  T& Keep(T value) {
    auto kept = std::make_shared<T>(std::move(value));
    T& ref = *kept;
    kept_.push_back(std::move(kept));
    return ref;
  }

  // `command` is a leaf subcommand of the app that is parsed; it must outlive this object.
  void Add(const CLI::App* command, Action action);

  // Runs the action of the command that was parsed and returns its exit code; kExitUsage
  // when no registered command was parsed.
  int Run() const;

 private:
  std::vector<std::pair<const CLI::App*, Action>> commands_;
  std::vector<std::shared_ptr<void>> kept_;  // type-erased owners of what Keep() was given
};

// Prints "evo: <message>" to stderr and returns `code`.
int Fail(int code, const Status& status);

// kExitUsage for InvalidArgument and NotFound (the user named something wrong), kExitFailure
// for every other code.
int ExitCodeFor(const Status& status);

// Commands print their own results and errors: only warnings from the modules reach stderr.
void InitCommandLogging();

// Adds `--format text|json` (default: `format`'s value) to `command`.
void AddFormatOption(CLI::App& command, std::string& format);

// Sends one request to a running evo server (`server` = "http://host:port", `path` with its
// query), with a JSON `body` unless empty. Prints a 2xx answer on stdout (JSON pretty-
// printed) and returns 0; otherwise prints the problem's detail (or the transport error) on
// stderr and returns kExitFailure. Waits at most 30 s.
int CallServer(const std::string& server, std::string method, const std::string& path,
               std::string body);

}  // namespace evo::cli
