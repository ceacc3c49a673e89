#include "core/logging.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace evo::logging {
namespace {

bool json_mode = false;

// The access log runs at request rate, so it does not go through spdlog: each thread formats
// its lines into its own buffer (an uncontended lock, no queue hand-off, no wake-up of another
// thread per line) and writes whole batches with one write(2) when the buffer passes 64 KiB or
// is 200 ms old. A flusher thread writes what idle threads leave behind every 250 ms.
class AccessLog {
 public:
  void Start() {
    std::lock_guard<std::mutex> lock(registry_mu_);
    if (flusher_.joinable()) {
      return;
    }
    stop_ = false;
    flusher_ = std::thread([this] { FlushLoop(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(registry_mu_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    if (flusher_.joinable()) {
      flusher_.join();
    }
    FlushAll();
  }

  // Appends one line (without its newline) for the calling thread.
  template <typename Format>
  void Append(Format&& format_line) {
    Buffer& buffer = ThisThreadBuffer();
    std::lock_guard<std::mutex> lock(buffer.mu);
    format_line(buffer.data);
    buffer.data.push_back('\n');
    const auto now = std::chrono::steady_clock::now();
    if (buffer.data.size() >= kMaxBuffered || now - buffer.last_write >= kMaxDelay) {
      WriteOut(buffer, now);
    }
  }

 private:
  static constexpr size_t kMaxBuffered = 64 << 10;
  static constexpr std::chrono::milliseconds kMaxDelay{200};

  struct Buffer {
    std::mutex mu;
    std::string data;                                  // guarded by mu
    std::chrono::steady_clock::time_point last_write;  // guarded by mu
  };

  Buffer& ThisThreadBuffer() {
    thread_local std::shared_ptr<Buffer> buffer;
    if (!buffer) {
      buffer = std::make_shared<Buffer>();
      buffer->last_write = std::chrono::steady_clock::now();
      std::lock_guard<std::mutex> lock(registry_mu_);
      buffers_.push_back(buffer);  // kept after the thread ends, so its last lines are written
    }
    return *buffer;
  }

  // REQUIRES: buffer.mu held.
  void WriteOut(Buffer& buffer, std::chrono::steady_clock::time_point now) {
    if (!buffer.data.empty()) {
      // One writer at a time, so batches from different threads never interleave.
      std::lock_guard<std::mutex> lock(write_mu_);
      size_t done = 0;
      while (done < buffer.data.size()) {
        const ssize_t n =
            ::write(STDERR_FILENO, buffer.data.data() + done, buffer.data.size() - done);
        if (n <= 0) {
          break;  // stderr closed or broken: drop the batch rather than block requests
        }
        done += static_cast<size_t>(n);
      }
      buffer.data.clear();
    }
    buffer.last_write = now;
  }

  void FlushAll() {
    std::vector<std::shared_ptr<Buffer>> buffers;
    {
      std::lock_guard<std::mutex> lock(registry_mu_);
      buffers = buffers_;
    }
    const auto now = std::chrono::steady_clock::now();
    for (const auto& buffer : buffers) {
      std::lock_guard<std::mutex> lock(buffer->mu);
      WriteOut(*buffer, now);
    }
  }

  void FlushLoop() {
    std::unique_lock<std::mutex> lock(registry_mu_);
    while (!stop_) {
      stop_cv_.wait_for(lock, std::chrono::milliseconds(250));
      lock.unlock();
      FlushAll();
      lock.lock();
    }
  }

  std::mutex registry_mu_;
  std::vector<std::shared_ptr<Buffer>> buffers_;  // guarded by registry_mu_
  bool stop_ = false;                             // guarded by registry_mu_
  std::condition_variable stop_cv_;
  std::thread flusher_;
  std::mutex write_mu_;  // serialises write(2) to stderr
};

AccessLog& TheAccessLog() {
  static AccessLog* const log = new AccessLog();  // never destroyed: threads may log late
  return *log;
}
std::atomic<bool> access_enabled{false};

// Appends "2026-11-28T11:12:28.849Z" for now, formatting the date part once per second.
void AppendTimestamp(std::string& out) {
  thread_local int64_t cached_second = -1;
  thread_local char cached[24];
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const int64_t second = ms / 1000;
  if (second != cached_second) {
    const time_t t = static_cast<time_t>(second);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S.", &tm);
    cached_second = second;
  }
  out += cached;
  fmt::format_to(std::back_inserter(out), "{:03}Z", ms % 1000);
}

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

  // The access log is written at info level.
  access_enabled = spdlog::level::from_str(options.level) <= spdlog::level::info;
  if (access_enabled) {
    TheAccessLog().Start();
  }
  return OkStatus();
}

void Shutdown() {
  TheAccessLog().Stop();
  spdlog::default_logger()->flush();
}

void LogAccess(const AccessRecord& r) {
  if (!access_enabled.load(std::memory_order_relaxed)) {
    return;
  }
  TheAccessLog().Append([&r](std::string& out) {
    auto it = std::back_inserter(out);
    if (json_mode) {
      out += R"({"time":")";
      AppendTimestamp(out);
      out += R"(","level":"info","logger":"access","method":")";
      AppendJsonEscaped(out, r.method);
      out += R"(","target":")";
      AppendJsonEscaped(out, r.target);
      out += R"(","route":")";
      AppendJsonEscaped(out, r.route);
      fmt::format_to(
          it, R"(","status":{},"duration_seconds":{:.6f},"bytes_in":{},"bytes_out":{},"remote":")",
          r.status, r.duration_seconds, r.bytes_in, r.bytes_out);
      AppendJsonEscaped(out, r.remote);
      out += R"(","request_id":")";
      AppendJsonEscaped(out, r.request_id);
      fmt::format_to(it, R"(","trace_id":"{}","span_id":"{}"}})", r.trace_id, r.span_id);
    } else {
      AppendTimestamp(out);
      out += " access ";
      out += r.method;
      out += ' ';
      AppendJsonEscaped(out, r.target);
      fmt::format_to(it, " {} {:.3f}ms in={} out={} remote={} request_id=", r.status,
                     r.duration_seconds * 1000.0, r.bytes_in, r.bytes_out, r.remote);
      AppendJsonEscaped(out, r.request_id);
      out += " trace_id=";
      out += r.trace_id;
    }
  });
}

void AppendJsonEscaped(std::string& out, std::string_view text) {
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
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  AppendJsonEscaped(out, text);
  return out;
}

}  // namespace evo::logging
