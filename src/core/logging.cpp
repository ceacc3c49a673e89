#include "core/logging.hpp"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace evo::logging {
namespace {

bool json_mode = false;
std::shared_ptr<spdlog::logger> access_logger;

// `%*` in a pattern: the message escaped for a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string escaped =
        JsonEscape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

std::unique_ptr<spdlog::formatter> MakeFormatter(bool json) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (json) {
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","msg":"%*"})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ [%n] %v");
  }
  return formatter;
}

}  // namespace

Status Validate(const Options& options) {
  if (options.format != "auto" && options.format != "text" && options.format != "json") {
    return InvalidArgumentError("log-format must be auto, text or json, not '" + options.format +
                                "'");
  }
  const auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return InvalidArgumentError("log-level must be trace, debug, info, warn, error or off, not '" +
                                options.level + "'");
  }
  return OkStatus();
}

Status Init(const Options& options) {
  EVO_RETURN_IF_ERROR(Validate(options));
  json_mode = options.format == "json" || (options.format == "auto" && !isatty(STDERR_FILENO));
  auto main_logger =
      std::make_shared<spdlog::logger>("evo", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  main_logger->set_formatter(MakeFormatter(json_mode));
  main_logger->set_level(spdlog::level::from_str(options.level));
  main_logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(main_logger);

  // The access log is asynchronous: request threads hand the line to a background thread
  // and never wait on the terminal. When the queue is full the oldest lines are dropped
  // rather than slowing requests down.
  if (!access_logger) {
    spdlog::init_thread_pool(8192, 1);
    access_logger = std::make_shared<spdlog::async_logger>(
        "access", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
        spdlog::async_overflow_policy::overrun_oldest);
  }
  auto access_formatter =
      std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  access_formatter->set_pattern(json_mode ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ",%v)"
                                          : "%Y-%m-%dT%H:%M:%S.%eZ access %v");
  access_logger->set_formatter(std::move(access_formatter));
  access_logger->set_level(spdlog::level::from_str(options.level) <= spdlog::level::info
                               ? spdlog::level::info
                               : spdlog::level::off);
  return OkStatus();
}

void Shutdown() {
  if (access_logger) {
    access_logger->flush();
  }
  spdlog::default_logger()->flush();
}

void LogAccess(const AccessRecord& r) {
  if (!access_logger || !access_logger->should_log(spdlog::level::info)) {
    return;
  }
  if (json_mode) {
    access_logger->info(
        R"("level":"info","logger":"access","method":"{}","target":"{}","route":"{}","status":{},"duration_seconds":{:.6f},"bytes_in":{},"bytes_out":{},"remote":"{}","request_id":"{}","trace_id":"{}","span_id":"{}"}})",
        JsonEscape(r.method), JsonEscape(r.target), JsonEscape(r.route), r.status,
        r.duration_seconds, r.bytes_in, r.bytes_out, JsonEscape(r.remote), JsonEscape(r.request_id),
        r.trace_id, r.span_id);
  } else {
    access_logger->info("{} {} {} {:.3f}ms in={} out={} remote={} request_id={} trace_id={}",
                        r.method, JsonEscape(r.target), r.status, r.duration_seconds * 1000.0,
                        r.bytes_in, r.bytes_out, r.remote, JsonEscape(r.request_id), r.trace_id);
  }
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

}  // namespace evo::logging
