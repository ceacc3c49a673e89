#include "webhooks/cli.hpp"

#include <signal.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "webhooks/listen.hpp"

namespace evo::webhooks {
namespace {

using cli::CallServer;
using cli::ExitCodeFor;
using cli::Fail;
using cli::kExitUsage;

struct ListenArgs {
  ListenOptions options;
  int port = 9000;
  bool quiet = false;
};

int ListenCommand(ListenArgs args) {
  if (args.port < 0 || args.port > 65535) {
    return Fail(kExitUsage, InvalidArgumentError("--port: 0..65535"));
  }
  args.options.listen = fmt::format("127.0.0.1:{}", args.port);
  args.options.print = !args.quiet;
  cli::InitCommandLogging();
  // Blocked before the listener starts its threads, so that only sigwaitinfo takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto listener = Listener::Start(args.options);
  if (!listener.ok()) {
    return Fail(ExitCodeFor(listener.status()), listener.status());
  }
  std::fprintf(stderr, "evo webhooks listen: receiving on port %u (%s); GET /stats counts\n",
               (*listener)->port(),
               args.options.secrets.empty() ? "signatures not checked: no --secret"
                                            : "verifying signatures");
  int received = 0;
  while (received <= 0) {
    received = sigwaitinfo(&signals, nullptr);
  }
  (*listener)->Stop();
  std::fprintf(stderr, "%s\n", (*listener)->StatsJson().c_str());
  return 0;
}

// The flags of the commands that call the server (each reads the ones it has).
struct ServerArgs {
  std::string server = "http://127.0.0.1:8080";
  std::string create;
  std::string description;
  std::string schema_file;
  std::vector<std::string> event_types;
  bool no_verify = false;
  std::string event_type;
  std::string endpoint;
  std::string message;
  std::string payload;
  std::string event_id;
};

std::string Query(const std::string& name, const std::string& value) {
  std::string out;
  for (char c : value) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return "?" + name + "=" + out;
}

int EventTypesCommand(const ServerArgs& args) {
  using nlohmann::json;
  if (args.create.empty()) {
    return CallServer(args.server, "GET", "/v1/event-types?pageSize=1000", "");
  }
  json body = {{"name", args.create}, {"description", args.description}};
  if (!args.schema_file.empty()) {
    std::ifstream in(args.schema_file);
    const json schema = json::parse(in, nullptr, false);
    if (!in || schema.is_discarded()) {
      return Fail(kExitUsage, InvalidArgumentError("--schema: not a readable JSON file"));
    }
    body["schema"] = schema;
  }
  return CallServer(args.server, "POST", "/v1/event-types", body.dump());
}

int EndpointsCommand(const ServerArgs& args) {
  if (args.create.empty()) {
    return CallServer(args.server, "GET", "/v1/endpoints?pageSize=1000", "");
  }
  nlohmann::json body = {{"url", args.create}, {"verify", !args.no_verify}};
  if (!args.event_types.empty()) {
    body["eventTypes"] = args.event_types;
  }
  return CallServer(args.server, "POST", "/v1/endpoints", body.dump());
}

int MessagesCommand(const ServerArgs& args) {
  return CallServer(args.server, "GET",
                    args.event_type.empty() ? "/v1/messages"
                                            : "/v1/messages" + Query("eventType", args.event_type),
                    "");
}

int AttemptsCommand(const ServerArgs& args) {
  if (args.endpoint.empty() == args.message.empty()) {
    return Fail(kExitUsage, InvalidArgumentError("give exactly one of --endpoint, --message"));
  }
  return CallServer(args.server, "GET",
                    args.endpoint.empty() ? "/v1/messages/" + args.message + "/attempts"
                                          : "/v1/endpoints/" + args.endpoint + "/attempts",
                    "");
}

int PublishCommand(const ServerArgs& args) {
  const nlohmann::json payload = nlohmann::json::parse(args.payload, nullptr, false);
  if (payload.is_discarded()) {
    return Fail(kExitUsage, InvalidArgumentError("PAYLOAD: not JSON"));
  }
  nlohmann::json body = {{"eventType", args.event_type}, {"payload", payload}};
  if (!args.event_id.empty()) {
    body["eventId"] = args.event_id;
  }
  return CallServer(args.server, "POST", "/v1/messages", body.dump());
}

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands) {
  auto* webhooks = app.add_subcommand("webhooks", "Webhook tools");
  webhooks->require_subcommand(1);
  ListenArgs& listen_args = commands.Keep(ListenArgs{});
  auto* listen = webhooks->add_subcommand(
      "listen",
      "Receive webhooks locally: verify signatures, answer the verification handshake, "
      "print and count deliveries (GET /stats)");
  listen->add_option("--port", listen_args.port, "Port on 127.0.0.1 (0 = any)")
      ->capture_default_str();
  listen->add_option("--secret", listen_args.options.secrets,
                     "Endpoint secret (whsec_...) or public key (whpk_...); "
                     "repeatable (rotation)");
  listen->add_option("--status", listen_args.options.status,
                     "Answer every delivery with this status (default 204)");
  listen->add_option("--fail-first", listen_args.options.fail_first,
                     "Answer 500 to the first N deliveries");
  listen->add_option("--fail-every", listen_args.options.fail_every,
                     "Then answer 500 to every Nth delivery");
  listen->add_option("--delay-ms", listen_args.options.delay_ms, "Wait this long before answering");
  listen->add_option("--retry-after", listen_args.options.retry_after_s,
                     "Send Retry-After: S with failure answers");
  listen->add_flag("--quiet", listen_args.quiet, "Count only, print nothing per delivery");
  commands.Add(listen, [&listen_args] { return ListenCommand(listen_args); });

  ServerArgs& args = commands.Keep(ServerArgs{});
  // Every server command is its own function but shares the flags, the logging and
  // `--server`.
  const auto add = [&](CLI::App* command, int (*run)(const ServerArgs&)) {
    command->add_option("--server", args.server, "The running evo server")->capture_default_str();
    commands.Add(command, [&args, run] {
      cli::InitCommandLogging();
      return run(args);
    });
  };
  auto* types =
      webhooks->add_subcommand("event-types", "List event types, or create one with --create NAME");
  add(types, EventTypesCommand);
  types->add_option("--create", args.create, "Create this event type");
  types->add_option("--description", args.description, "Its description");
  types->add_option("--schema", args.schema_file, "A JSON Schema file for its payload");

  auto* endpoints =
      webhooks->add_subcommand("endpoints", "List endpoints, or create one with --create URL");
  add(endpoints, EndpointsCommand);
  endpoints->add_option("--create", args.create, "Create an endpoint for this URL");
  endpoints->add_option("--event-type", args.event_types, "Subscribe to this type (repeatable)");
  endpoints->add_flag("--no-verify", args.no_verify, "Skip the verification handshake");

  auto* messages = webhooks->add_subcommand("messages", "List published messages");
  add(messages, MessagesCommand);
  messages->add_option("--event-type", args.event_type, "Only this type");

  auto* attempts = webhooks->add_subcommand(
      "attempts", "Delivery attempts of an endpoint (--endpoint) or a message (--message)");
  add(attempts, AttemptsCommand);
  attempts->add_option("--endpoint", args.endpoint, "Endpoint id");
  attempts->add_option("--message", args.message, "Message id");

  auto* publish = webhooks->add_subcommand("publish", "Publish an event");
  add(publish, PublishCommand);
  publish->add_option("type", args.event_type, "Event type")->required();
  publish->add_option("payload", args.payload, "Payload (JSON)")->required();
  publish->add_option("--event-id", args.event_id, "Idempotency key");
}

}  // namespace evo::webhooks
