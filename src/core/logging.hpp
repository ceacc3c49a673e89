// Logging: spdlog underneath, one format switch for humans and machines.
//
// Code logs through spdlog's default logger (`spdlog::info("listening on {}", addr)`).
// Init() configures it: `text` is a readable line for terminals, `json` one JSON object per
// line ({"time","level","logger","msg"}) for log shippers; `auto` picks text when stderr is
// a terminal. Access-log records go through LogAccess(), which formats into a per-thread
// buffer written in batches (64 KiB or 200 ms; a flusher thread writes what idle threads
// leave), so the request path never waits on the terminal or on another thread.
//
// Thread safety: Init once at start-up, before other threads log; everything else is safe
// from any thread.
#pragma once

#include <string>
#include <string_view>

#include "core/status.hpp"

namespace evo::logging {

struct Options {
  std::string format = "auto";  // auto | text | json
  std::string level = "info";   // trace | debug | info | warn | error | off
};
// InvalidArgument naming `log-format` / `log-level`.
Status Validate(const Options& options);
// Configures the default and access loggers (both to stderr).
Status Init(const Options& options);
// Writes every buffered access-log line and stops the flusher (call once before exit).
void Shutdown();

struct AccessRecord {
  std::string_view method;
  std::string_view target;
  std::string_view route;  // matched pattern, or "" when none
  int status = 0;
  double duration_seconds = 0;
  size_t bytes_in = 0;
  size_t bytes_out = 0;
  std::string_view remote;
  std::string_view request_id;
  std::string_view trace_id;
  std::string_view span_id;
};
// One access-log line (text or JSON per Init).
void LogAccess(const AccessRecord& record);

// `text` escaped for use inside a JSON string (without the quotes).
std::string JsonEscape(std::string_view text);
// The same, appended to `out` (no allocation beyond out's growth).
void AppendJsonEscaped(std::string& out, std::string_view text);

}  // namespace evo::logging
