#include "cli/cli.hpp"

#include <chrono>
#include <cstdio>
#include <future>

#include <nlohmann/json.hpp>

#include "core/logging.hpp"
#include "outbound/client.hpp"

namespace evo::cli {

void Commands::Add(const CLI::App* command, Action action) {
  commands_.emplace_back(command, std::move(action));
}

int Commands::Run() const {
  for (const auto& [command, action] : commands_) {
    if (command->parsed()) {
      return action();
    }
  }
  return kExitUsage;
}

int Fail(int code, const Status& status) {
  std::fprintf(stderr, "evo: %s\n", std::string(status.message()).c_str());
  return code;
}

int ExitCodeFor(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound
             ? kExitUsage
             : kExitFailure;
}

void InitCommandLogging() { (void)logging::Init(logging::Options{"text", "warn"}); }

void AddFormatOption(CLI::App& command, std::string& format) {
  command.add_option("--format", format, "text | json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

int CallServer(const std::string& server, std::string method, const std::string& path,
               std::string body) {
  outbound::ClientOptions options;
  // The CLI talks to the user's own server, usually on loopback: no SSRF guard.
  options.ssrf.allow = {outbound::ParseCidr("0.0.0.0/0").value(),
                        outbound::ParseCidr("::/0").value()};
  options.max_body_bytes = 64 << 20;
  auto client = outbound::Client::Start(options);
  if (!client.ok()) {
    return Fail(kExitFailure, client.status());
  }
  outbound::Request request;
  request.method = std::move(method);
  request.url = server + path;
  request.timeout = std::chrono::seconds(30);
  if (!body.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::move(body);
  }
  std::promise<outbound::Response> answer;
  (*client)->Send(std::move(request),
                  [&answer](outbound::Response r) { answer.set_value(std::move(r)); });
  outbound::Response r = answer.get_future().get();
  (*client)->Stop();
  if (!r.error.ok()) {
    return Fail(kExitFailure, Status(r.error.code(),
                                     "calling " + server + ": " + std::string(r.error.message())));
  }
  const nlohmann::json parsed = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status < 200 || r.status > 299) {
    std::fprintf(stderr, "evo: %d %s\n", r.status,
                 parsed.is_object() ? parsed.value("detail", r.body).c_str() : r.body.c_str());
    return kExitFailure;
  }
  std::printf("%s\n", parsed.is_discarded() ? r.body.c_str() : parsed.dump(2).c_str());
  return 0;
}

}  // namespace evo::cli
