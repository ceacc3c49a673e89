// Request bodies are checked field by field (400 with a JSON pointer); unknown fields are
// ignored. The lease answer is built by hand so that stored payloads are copied in as they
// are, not parsed and printed again.
#include "queue/http.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/logging.hpp"

namespace evo::queue {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kMaxMessagesBody = 16u << 20;
// BrokerOptions::max_lease_bytes as evo serve sets it (the default).
constexpr int64_t kMaxLeaseBytes = int64_t{16} << 20;

// Seconds field `name` of `body` as milliseconds: absent -> `fallback`; a number in
// [min, max] seconds (fractions allowed) -> its value; anything else -> 400 at `pointer`.
StatusOr<milliseconds> Seconds(const json& body, const char* name, const std::string& pointer,
                               double min, double max, milliseconds fallback) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_number() || !(it->get<double>() >= min) || !(it->get<double>() <= max)) {
    return http::InvalidField(
        pointer, fmt::format("{} must be a number of seconds in [{}, {}]", name, min, max));
  }
  return milliseconds(static_cast<int64_t>(std::llround(it->get<double>() * 1000.0)));
}

StatusOr<std::string> OptionalString(const json& body, const char* name, const std::string& pointer,
                                     size_t max_bytes) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().size() > max_bytes) {
    return http::InvalidField(
        pointer, fmt::format("{} must be a string of at most {} bytes", name, max_bytes));
  }
  return it->get<std::string>();
}

StatusOr<NewMessage> ParseMessage(const json& m, const std::string& at) {
  if (!m.is_object()) {
    return http::InvalidField(at, "a message is an object {\"payload\", ...}");
  }
  NewMessage out;
  const auto payload = m.find("payload");
  if (payload == m.end()) {
    return http::InvalidField(at + "/payload", "payload is required (any JSON value)");
  }
  out.payload = payload->dump(-1, ' ', false, json::error_handler_t::replace);
  EVO_ASSIGN_OR_RETURN(out.delay, Seconds(m, "delaySeconds", at + "/delaySeconds", 0,
                                          30.0 * 24 * 3600, milliseconds(0)));
  EVO_ASSIGN_OR_RETURN(out.ordering_key,
                       OptionalString(m, "orderingKey", at + "/orderingKey", 256));
  EVO_ASSIGN_OR_RETURN(out.dedupe_key, OptionalString(m, "dedupeKey", at + "/dedupeKey", 256));
  // Keys name things; the payload, header values and error texts are data (NUL included).
  EVO_RETURN_IF_ERROR(http::CheckIdentifier(out.ordering_key, at + "/orderingKey"));
  EVO_RETURN_IF_ERROR(http::CheckIdentifier(out.dedupe_key, at + "/dedupeKey"));
  EVO_ASSIGN_OR_RETURN(std::string priority, OptionalString(m, "priority", at + "/priority", 16));
  if (!priority.empty()) {
    auto lane = ParseLane(priority);
    if (!lane.ok()) {
      return http::InvalidField(at + "/priority", lane.status().message());
    }
    out.lane = *lane;
  }
  if (const auto headers = m.find("headers"); headers != m.end() && !headers->is_null()) {
    if (!headers->is_object()) {
      return http::InvalidField(at + "/headers", "headers is an object of strings");
    }
    for (const auto& [name, value] : headers->items()) {
      if (!value.is_string()) {
        return http::InvalidField(fmt::format("{}/headers/{}", at, name),
                                  "a header value is a string");
      }
      EVO_RETURN_IF_ERROR(http::CheckIdentifier(name, fmt::format("{}/headers", at)));
      out.headers.emplace_back(name, value.get<std::string>());
    }
  }
  return out;
}

void AppendTime(std::string& out, int64_t unix_ms) {
  out += '"';
  out += FormatUnixMillis(unix_ms);
  out += '"';
}

// A stored payload as JSON: as it is when it is JSON text (everything enqueued over HTTP),
// else as a JSON string.
void AppendPayload(std::string& out, const std::string& payload) {
  if (json::accept(payload)) {
    out += payload;
  } else {
    out += '"';
    logging::AppendJsonEscaped(out, payload);
    out += '"';
  }
}

void AppendHeaders(std::string& out, const Headers& headers) {
  out += '{';
  for (size_t i = 0; i < headers.size(); ++i) {
    out += i ? ",\"" : "\"";
    logging::AppendJsonEscaped(out, headers[i].first);
    out += "\":\"";
    logging::AppendJsonEscaped(out, headers[i].second);
    out += '"';
  }
  out += '}';
}

std::string LeasesJson(const std::vector<Leased>& leases) {
  std::string out = "{\"leases\":[";
  for (size_t i = 0; i < leases.size(); ++i) {
    const Leased& l = leases[i];
    out += i ? ",{\"leaseId\":\"" : "{\"leaseId\":\"";
    out += l.lease_id;
    out += "\",\"messageId\":\"";
    out += std::to_string(l.id);
    out += "\",\"attempt\":";
    out += std::to_string(l.attempt);
    out += ",\"priority\":\"";
    out += LaneName(l.lane);
    out += "\",\"enqueuedAt\":";
    AppendTime(out, l.enqueued_unix_ms);
    out += ",\"leaseExpiresAt\":";
    AppendTime(out, l.lease_expires_unix_ms);
    if (!l.ordering_key.empty()) {
      out += ",\"orderingKey\":\"";
      logging::AppendJsonEscaped(out, l.ordering_key);
      out += '"';
    }
    if (!l.headers.empty()) {
      out += ",\"headers\":";
      AppendHeaders(out, l.headers);
    }
    out += ",\"payload\":";
    AppendPayload(out, l.payload);
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace

json ToJson(const QueueStats& s) {
  return {{"name", s.name},
          {"depth", s.depth},
          {"ready", s.ready},
          {"inFlight", s.in_flight},
          {"delayed", s.delayed},
          {"deadLetters", s.dead_letters},
          {"oldestReadyAgeSeconds", s.oldest_ready_age_seconds},
          {"maxAttempts", s.options.max_attempts},
          {"visibilitySeconds", static_cast<double>(s.options.default_visibility.count()) / 1000.0},
          {"dedupeWindowSeconds", static_cast<double>(s.options.dedupe_window.count()) / 1000.0},
          {"maxPayloadBytes", s.options.max_payload_bytes},
          {"totals",
           {{"enqueued", s.enqueued_total},
            {"deduplicated", s.deduplicated_total},
            {"acked", s.acked_total},
            {"nacked", s.nacked_total},
            {"deadLettered", s.dead_lettered_total},
            {"expiredLeases", s.expired_leases_total},
            {"redriven", s.redriven_total}}}};
}

namespace {

json DeadLetterJson(const DeadLetter& d) {
  std::string payload;
  AppendPayload(payload, d.payload);
  json history = json::array();
  for (const AttemptRecord& r : d.history) {
    history.push_back(
        {{"attempt", r.attempt}, {"at", FormatUnixMillis(r.unix_ms)}, {"error", r.error}});
  }
  json headers = json::object();
  for (const auto& [name, value] : d.headers) {
    headers[name] = value;
  }
  json out = {{"id", std::to_string(d.id)},
              {"payload", json::parse(payload, nullptr, false)},
              {"headers", std::move(headers)},
              {"attempts", d.attempts},
              {"lastError", d.last_error},
              {"history", std::move(history)},
              {"priority", LaneName(d.lane)},
              {"enqueuedAt", FormatUnixMillis(d.enqueued_unix_ms)},
              {"deadAt", FormatUnixMillis(d.dead_unix_ms)}};
  if (!d.ordering_key.empty()) {
    out["orderingKey"] = d.ordering_key;
  }
  return out;
}

StatusOr<MessageId> ParseMessageId(std::string_view text, const std::string& pointer) {
  MessageId id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || text.size() > 19 || ec != std::errc() || end != text.data() + text.size() ||
      id > static_cast<MessageId>(INT64_MAX)) {
    return http::InvalidField(pointer, "a message id is a decimal string");
  }
  return id;
}

StatusOr<DeadLetterFilter> ParseFilter(const json& body) {
  DeadLetterFilter filter;
  if (const auto ids = body.find("ids"); ids != body.end() && !ids->is_null()) {
    if (!ids->is_array() || ids->size() > 1000) {
      return http::InvalidField("#/ids", "ids is an array of at most 1000 message ids");
    }
    for (size_t i = 0; i < ids->size(); ++i) {
      const json& v = (*ids)[i];
      if (!v.is_string()) {
        return http::InvalidField(fmt::format("#/ids/{}", i), "a message id is a string");
      }
      EVO_ASSIGN_OR_RETURN(MessageId id,
                           ParseMessageId(v.get<std::string>(), fmt::format("#/ids/{}", i)));
      filter.ids.push_back(id);
    }
    if (filter.ids.empty()) {
      return http::InvalidField("#/ids", "ids must not be empty (omit it to match all)");
    }
  }
  EVO_ASSIGN_OR_RETURN(filter.error_contains,
                       OptionalString(body, "errorContains", "#/errorContains", 1024));
  EVO_ASSIGN_OR_RETURN(std::string before, OptionalString(body, "deadBefore", "#/deadBefore", 64));
  if (!before.empty()) {
    auto t = ParseTimestamp(before);
    if (!t.ok()) {
      return http::InvalidField("#/deadBefore", "deadBefore is an RFC 3339 UTC time");
    }
    filter.dead_before_unix_ms = UnixMillis(*t);
  }
  return filter;
}

// The body as an object; an empty body is {}.
StatusOr<json> OptionalObjectBody(const http::Request& request) {
  if (request.body.empty()) {
    return json::object();
  }
  return request.JsonObjectBody();
}

json NameParameter() {
  return {{"name", "name"},
          {"in", "path"},
          {"required", true},
          {"schema", {{"type", "string"}, {"pattern", "^[A-Za-z0-9._-]{1,64}$"}}}};
}
json LeaseParameter() {
  return {{"name", "leaseId"},
          {"in", "path"},
          {"required", true},
          {"schema", {{"type", "string"}, {"pattern", "^[0-9a-f]{16}-[0-9]+$"}}}};
}

// A route's options: the scope it needs (queue:read, queue:write, or admin for
// operator-only routes) and its OpenAPI description.
http::RouteOptions Doc(std::string scope, std::string summary, std::string id, json responses,
                       json request_schema = nullptr, json parameters = json::array()) {
  http::RouteOptions o;
  o.scope = std::move(scope);
  o.openapi = {{"summary", std::move(summary)},
               {"operationId", std::move(id)},
               {"tags", {"queue"}},
               {"parameters", std::move(parameters)},
               {"responses", std::move(responses)}};
  if (!request_schema.is_null()) {
    o.openapi["requestBody"] = http::JsonRequestSpec(std::move(request_schema));
  }
  return o;
}

json MessageSchema() {
  return {{"type", "object"},
          {"required", {"payload"}},
          {"properties",
           {{"payload", json::object()},
            {"delaySeconds", {{"type", "number"}, {"minimum", 0}}},
            {"orderingKey", {{"type", "string"}, {"maxLength", 256}}},
            {"dedupeKey", {{"type", "string"}, {"maxLength", 256}}},
            {"priority", {{"enum", {"high", "normal", "low"}}}},
            {"headers", {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}}}}}};
}

json Problem(const char* what) { return http::ProblemResponseSpec(what); }

// A route whose handler waits for the broker synchronously (a group commit, or SQLite reads
// of up to a page of payloads): it runs on the server's blocking pool, not an I/O thread.
http::RouteOptions Blocking(http::RouteOptions options) {
  options.blocking = true;
  return options;
}

// Hands a broker result to the HTTP reply.
template <typename T, typename F>
Callback<T> Answer(http::Reply reply, F make) {
  return [reply = std::move(reply), make = std::move(make)](StatusOr<T> result) {
    if (!result.ok()) {
      reply(result.status());
      return;
    }
    reply(make(*std::move(result)));
  };
}

}  // namespace

bool IsInternalQueue(std::string_view name, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [name](const std::string& p) { return name.starts_with(p); });
}

void RegisterRoutes(http::Router& router, Broker& broker, RouteOptions route_options) {
  // The {name} of a request as the public API sees it: an internal queue does not exist.
  auto internal =
      std::make_shared<const std::vector<std::string>>(std::move(route_options.internal_prefixes));
  auto public_name = [internal](const http::Request& request) -> StatusOr<std::string_view> {
    const std::string_view queue = request.Param("name");
    if (IsInternalQueue(queue, *internal)) {
      return NotFoundError(fmt::format("no queue named '{}'", queue))
          .With(kPayloadReason, "QUEUE_NOT_FOUND");
    }
    return queue;
  };
  const json name = json::array({NameParameter()});
  const json lease = json::array({NameParameter(), LeaseParameter()});

  router.Put(
      "/v1/queues/{name}",
      [&broker, internal](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, OptionalObjectBody(request));
        const std::string queue(request.Param("name"));
        if (IsInternalQueue(queue, *internal)) {
          return PermissionDeniedError(
                     fmt::format("'{}' is in a namespace reserved for evo's own modules", queue))
              .With(kPayloadReason, "RESERVED_QUEUE_NAME");
        }
        QueueOptions options;
        if (auto existing = broker.Stats(queue); existing.ok()) {
          options = existing->options;  // a PUT with fewer fields keeps the others
        }
        if (const auto a = body.find("maxAttempts"); a != body.end() && !a->is_null()) {
          if (!a->is_number_integer() || a->get<int64_t>() < 1 || a->get<int64_t>() > 1000) {
            return http::InvalidField("#/maxAttempts", "maxAttempts must be an integer 1..1000");
          }
          options.max_attempts = a->get<int>();
        }
        EVO_ASSIGN_OR_RETURN(options.default_visibility,
                             Seconds(body, "visibilitySeconds", "#/visibilitySeconds", 0.001,
                                     12 * 3600, options.default_visibility));
        EVO_ASSIGN_OR_RETURN(options.dedupe_window,
                             Seconds(body, "dedupeWindowSeconds", "#/dedupeWindowSeconds", 0,
                                     30.0 * 24 * 3600, options.dedupe_window));
        if (const auto p = body.find("maxPayloadBytes"); p != body.end() && !p->is_null()) {
          if (!p->is_number_integer() || p->get<int64_t>() < 1 || p->get<int64_t>() > (16 << 20)) {
            return http::InvalidField("#/maxPayloadBytes",
                                      "maxPayloadBytes must be an integer 1..16777216");
          }
          options.max_payload_bytes = p->get<size_t>();
        }
        EVO_RETURN_IF_ERROR(broker.DeclareQueue(queue, options));
        EVO_ASSIGN_OR_RETURN(QueueStats stats, broker.Stats(queue));
        return http::Response::Json(200, ToJson(stats));
      },
      Blocking(Doc("queue:write", "Declare a queue or change its settings", "putQueue",
                   {{"200", http::JsonResponseSpec("The queue.")},
                    {"400", Problem("Bad name or field.")},
                    {"403", Problem("A name reserved for evo's own modules.")}},
                   {{"type", "object"},
                    {"properties",
                     {{"maxAttempts", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}},
                      {"visibilitySeconds", {{"type", "number"}}},
                      {"dedupeWindowSeconds", {{"type", "number"}}},
                      {"maxPayloadBytes", {{"type", "integer"}}}}}},
                   name)));

  router.Get(
      "/v1/queues",
      [&broker, internal](const http::Request&) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(std::vector<QueueStats> all, broker.ListQueues());
        json out = {{"queues", json::array()}};
        for (const QueueStats& s : all) {
          if (IsInternalQueue(s.name, *internal)) {
            continue;
          }
          out["queues"].push_back(ToJson(s));
        }
        return http::Response::Json(200, out);
      },
      Blocking(Doc("queue:read", "List queues with their stats", "listQueues",
                   {{"200", http::JsonResponseSpec("Every queue.")}})));

  router.Get(
      "/v1/queues/{name}",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue, public_name(request));
        EVO_ASSIGN_OR_RETURN(QueueStats s, broker.Stats(queue));
        return http::Response::Json(200, ToJson(s));
      },
      Blocking(
          Doc("queue:read",
              "Queue stats: depth, in flight, dead letters, age of the oldest message", "getQueue",
              {{"200", http::JsonResponseSpec("The queue.")}, {"404", Problem("No such queue.")}},
              nullptr, name)));

  router.Delete(
      "/v1/queues/{name}",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue, public_name(request));
        EVO_RETURN_IF_ERROR(broker.DeleteQueue(queue));
        return http::Response::Empty(204);
      },
      Blocking(Doc("admin", "Delete a queue with its messages and dead letters", "deleteQueue",
                   {{"204", {{"description", "Deleted."}}}, {"404", Problem("No such queue.")}},
                   nullptr, name)));

  http::RouteOptions enqueue =
      Doc("queue:write", "Enqueue a message or a batch; answers once durable", "enqueue",
          {{"201", http::JsonResponseSpec("{\"id\"} or, for a batch, {\"ids\"}.")},
           {"400", Problem("Bad field, negative delay, batch over the cap.")},
           {"404", Problem("No such queue.")},
           {"413", Problem("A payload over the queue's maxPayloadBytes.")}},
          {{"oneOf",
            {MessageSchema(),
             {{"type", "object"},
              {"required", {"messages"}},
              {"properties", {{"messages", {{"type", "array"}, {"items", MessageSchema()}}}}}}}}},
          name);
  enqueue.max_body_bytes = kMaxMessagesBody;
  router.HandleAsync(
      "POST", "/v1/queues/{name}/messages",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        auto body = request.JsonObjectBody();
        if (!body.ok()) {
          return reply(body.status());
        }
        std::vector<NewMessage> messages;
        const auto batch = body->find("messages");
        const bool is_batch = batch != body->end();
        if (is_batch) {
          if (!batch->is_array() || batch->empty()) {
            return reply(http::InvalidField("#/messages", "messages is a non-empty array"));
          }
          for (size_t i = 0; i < batch->size(); ++i) {
            auto m = ParseMessage((*batch)[i], fmt::format("#/messages/{}", i));
            if (!m.ok()) {
              return reply(m.status());
            }
            messages.push_back(*std::move(m));
          }
        } else {
          auto m = ParseMessage(*body, "#");
          if (!m.ok()) {
            return reply(m.status());
          }
          messages.push_back(*std::move(m));
        }
        broker.EnqueueAsync(*queue_name, std::move(messages),
                            Answer<std::vector<MessageId>>(
                                std::move(reply), [is_batch](std::vector<MessageId> ids) {
                                  std::string out = is_batch ? "{\"ids\":[" : "{\"id\":";
                                  for (size_t i = 0; i < ids.size(); ++i) {
                                    out += i ? ",\"" : "\"";
                                    out += std::to_string(ids[i]);
                                    out += '"';
                                  }
                                  out += is_batch ? "]}" : "}";
                                  return http::Response::Text(201, std::move(out),
                                                              "application/json");
                                }));
      },
      enqueue);

  router.HandleAsync(
      "POST", "/v1/queues/{name}/leases",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        auto body = OptionalObjectBody(request);
        if (!body.ok()) {
          return reply(body.status());
        }
        LeaseOptions options;
        if (const auto max = body->find("max"); max != body->end() && !max->is_null()) {
          if (!max->is_number_integer() || max->get<int64_t>() < 1 || max->get<int64_t>() > 1000) {
            return reply(http::InvalidField("#/max", "max must be an integer 1..1000"));
          }
          options.max = max->get<size_t>();
        }
        auto visibility = Seconds(*body, "visibilitySeconds", "#/visibilitySeconds", 0.001,
                                  12 * 3600, milliseconds(0));
        auto wait = Seconds(*body, "waitSeconds", "#/waitSeconds", 0, 20, milliseconds(0));
        if (!visibility.ok() || !wait.ok()) {
          return reply(visibility.ok() ? wait.status() : visibility.status());
        }
        options.visibility = *visibility;
        options.wait = *wait;
        if (const auto max_bytes = body->find("maxBytes");
            max_bytes != body->end() && !max_bytes->is_null()) {
          if (!max_bytes->is_number_integer() || max_bytes->get<int64_t>() < 1 ||
              max_bytes->get<int64_t>() > kMaxLeaseBytes) {
            return reply(http::InvalidField(
                "#/maxBytes", fmt::format("maxBytes must be an integer 1..{}", kMaxLeaseBytes)));
          }
          options.max_bytes = max_bytes->get<size_t>();
        }
        broker.LeaseAsync(
            *queue_name, options,
            Answer<std::vector<Leased>>(std::move(reply), [](std::vector<Leased> leases) {
              // The broker's writer thread only hands the leases over: their JSON is built
              // on the connection's I/O thread, just before it is sent.
              http::Response response = http::Response::Empty(200);
              response.headers.Set("Content-Type", "application/json");
              response.prepare =
                  [leases = std::make_shared<const std::vector<Leased>>(std::move(leases))](
                      http::Response& out) { out.body = LeasesJson(*leases); };
              return response;
            }));
      },
      Doc("queue:write", "Lease messages for a visibility timeout (optionally waiting for one)",
          "lease",
          {{"200", http::JsonResponseSpec("{\"leases\": [...]} (empty when nothing is visible).")},
           {"400", Problem("Bad max, visibilitySeconds or waitSeconds.")},
           {"404", Problem("No such queue.")}},
          {{"type", "object"},
           {"properties",
            {{"max", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}},
             {"maxBytes",
              {{"type", "integer"},
               {"minimum", 1},
               {"maximum", kMaxLeaseBytes},
               {"default", kMaxLeaseBytes},
               {"description",
                "Payload and header bytes leased at most; the answer stops before the "
                "message that would go over, but always holds at least one."}}},
             {"visibilitySeconds", {{"type", "number"}}},
             {"waitSeconds", {{"type", "number"}, {"minimum", 0}, {"maximum", 20}}}}}},
          name));

  const json lease_errors = {
      {"400", Problem("Malformed lease id or field.")},
      {"404", Problem("No such queue, or the message is gone (acked, dead-lettered).")},
      {"409", Problem("The lease ran out or a newer delivery superseded it.")}};
  auto with = [&lease_errors](const json& ok) {
    json r = lease_errors;
    r.update(ok);
    return r;
  };
  router.HandleAsync(
      "POST", "/v1/queues/{name}/leases/{leaseId}:ack",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        broker.AckAsync(
            *queue_name, request.Param("leaseId"),
            Answer<bool>(std::move(reply), [](bool) { return http::Response::Empty(204); }));
      },
      Doc("queue:write", "Ack: the message is done and deleted", "ack",
          with({{"204", {{"description", "Acked."}}}}), nullptr, lease));

  router.HandleAsync(
      "POST", "/v1/queues/{name}/leases:ack",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        auto body = request.JsonObjectBody();
        if (!body.ok()) {
          return reply(body.status());
        }
        const auto ids = body->find("leaseIds");
        if (ids == body->end() || !ids->is_array() || ids->empty() || ids->size() > 1000) {
          return reply(
              http::InvalidField("#/leaseIds", "leaseIds is an array of 1..1000 lease ids"));
        }
        std::vector<std::string> lease_ids;
        for (size_t i = 0; i < ids->size(); ++i) {
          if (!(*ids)[i].is_string()) {
            return reply(
                http::InvalidField(fmt::format("#/leaseIds/{}", i), "a lease id is a string"));
          }
          lease_ids.push_back((*ids)[i].get<std::string>());
        }
        broker.AckBatchAsync(
            *queue_name, lease_ids,
            Answer<std::vector<Status>>(
                std::move(reply), [lease_ids](const std::vector<Status>& results) {
                  json out = {{"results", json::array()}};
                  for (size_t i = 0; i < results.size(); ++i) {
                    json r = {{"leaseId", lease_ids[i]}, {"acked", results[i].ok()}};
                    if (!results[i].ok()) {
                      r["error"] = std::string(results[i].message());
                      r["status"] = http::ProblemResponse(results[i]).status;
                    }
                    out["results"].push_back(std::move(r));
                  }
                  return http::Response::Json(200, out);
                }));
      },
      Doc("queue:write", "Ack several leases at once", "ackBatch",
          {{"200", http::JsonResponseSpec("{\"results\": [{\"leaseId\", \"acked\", \"error\"?, "
                                          "\"status\"?}]}, in request order.")},
           {"400", Problem("Malformed body.")},
           {"404", Problem("No such queue.")}},
          {{"type", "object"},
           {"required", {"leaseIds"}},
           {"properties",
            {{"leaseIds",
              {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", 1000}}}}}},
          name));

  router.HandleAsync(
      "POST", "/v1/queues/{name}/leases/{leaseId}:nack",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        auto body = OptionalObjectBody(request);
        if (!body.ok()) {
          return reply(body.status());
        }
        auto delay =
            Seconds(*body, "delaySeconds", "#/delaySeconds", 0, 30.0 * 24 * 3600, milliseconds(0));
        auto error = OptionalString(*body, "error", "#/error", 4096);
        if (!delay.ok() || !error.ok()) {
          return reply(delay.ok() ? error.status() : delay.status());
        }
        bool permanent = false;
        if (const auto p = body->find("permanent"); p != body->end() && !p->is_null()) {
          if (!p->is_boolean()) {
            return reply(http::InvalidField("#/permanent", "permanent is a boolean"));
          }
          permanent = p->get<bool>();
        }
        auto done = Answer<bool>(std::move(reply), [](bool) { return http::Response::Empty(204); });
        if (permanent) {
          broker.FailAsync(*queue_name, request.Param("leaseId"), *std::move(error),
                           std::move(done));
        } else {
          broker.NackAsync(*queue_name, request.Param("leaseId"),
                           {.delay = *delay, .error = *std::move(error)}, std::move(done));
        }
      },
      Doc("queue:write", "Nack: retry after delaySeconds, or dead-letter now with permanent=true",
          "nack", with({{"204", {{"description", "Nacked."}}}}),
          {{"type", "object"},
           {"properties",
            {{"delaySeconds", {{"type", "number"}, {"minimum", 0}}},
             {"error", {{"type", "string"}}},
             {"permanent", {{"type", "boolean"}}}}}},
          lease));

  router.HandleAsync(
      "POST", "/v1/queues/{name}/leases/{leaseId}:extend",
      [&broker, public_name](const http::Request& request, http::Reply reply) {
        const auto queue_name = public_name(request);
        if (!queue_name.ok()) {
          return reply(queue_name.status());
        }
        auto body = OptionalObjectBody(request);
        if (!body.ok()) {
          return reply(body.status());
        }
        auto visibility = Seconds(*body, "visibilitySeconds", "#/visibilitySeconds", 0.001,
                                  12 * 3600, milliseconds(30'000));
        if (!visibility.ok()) {
          return reply(visibility.status());
        }
        broker.ExtendAsync(
            *queue_name, request.Param("leaseId"), *visibility,
            Answer<int64_t>(std::move(reply), [](int64_t until) {
              return http::Response::Json(200, {{"leaseExpiresAt", FormatUnixMillis(until)}});
            }));
      },
      Doc("queue:write", "Extend a lease (heartbeat)", "extendLease",
          with({{"200", http::JsonResponseSpec("{\"leaseExpiresAt\"}.")}}),
          {{"type", "object"}, {"properties", {{"visibilitySeconds", {{"type", "number"}}}}}},
          lease));

  json list_params = http::PageParametersSpec();
  list_params.push_back(NameParameter());
  router.Get(
      "/v1/queues/{name}/dead-letters",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue_name, public_name(request));
        EVO_ASSIGN_OR_RETURN(size_t size, http::PageSizeParam(request));
        EVO_ASSIGN_OR_RETURN(auto token, request.Query("pageToken"));
        std::optional<MessageId> after;
        if (token && !token->empty()) {
          auto id = ParseMessageId(*token, "#/pageToken");
          if (!id.ok()) {
            return http::InvalidField("#/pageToken", "pageToken is not one this service issued");
          }
          after = *id;
        }
        EVO_ASSIGN_OR_RETURN(DeadLetterPage page, broker.ListDeadLetters(queue_name, after, size));
        json out = {{"deadLetters", json::array()}};
        for (const DeadLetter& d : page.items) {
          out["deadLetters"].push_back(DeadLetterJson(d));
        }
        if (page.next_after) {
          out["nextPageToken"] = std::to_string(*page.next_after);
        }
        return http::Response::Json(200, out);
      },
      Blocking(Doc("queue:read", "List dead letters, oldest first", "listDeadLetters",
                   {{"200", http::JsonResponseSpec("{\"deadLetters\", \"nextPageToken\"?}.")},
                    {"400", Problem("Bad pageSize or pageToken.")},
                    {"404", Problem("No such queue.")}},
                   nullptr, list_params)));

  router.Get(
      "/v1/queues/{name}/dead-letters/{id}",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue_name, public_name(request));
        EVO_ASSIGN_OR_RETURN(MessageId id, ParseMessageId(request.Param("id"), "#/id"));
        EVO_ASSIGN_OR_RETURN(DeadLetter d, broker.GetDeadLetter(queue_name, id));
        return http::Response::Json(200, DeadLetterJson(d));
      },
      Blocking(Doc("queue:read", "Inspect a dead letter: payload, last error, attempt history",
                   "getDeadLetter",
                   {{"200", http::JsonResponseSpec("The dead letter.")},
                    {"404", Problem("No such queue or dead letter.")}},
                   nullptr, name)));

  router.Post(
      "/v1/queues/{name}/dead-letters:redrive",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue_name, public_name(request));
        EVO_ASSIGN_OR_RETURN(const json body, OptionalObjectBody(request));
        EVO_ASSIGN_OR_RETURN(DeadLetterFilter filter, ParseFilter(body));
        EVO_ASSIGN_OR_RETURN(int64_t n, broker.Redrive(queue_name, filter));
        return http::Response::Json(200, {{"redriven", n}});
      },
      Blocking(Doc("admin",
                   "Move dead letters back onto the queue (all, or filtered by ids, errorContains, "
                   "deadBefore)",
                   "redriveDeadLetters",
                   {{"200", http::JsonResponseSpec("{\"redriven\": n}.")},
                    {"400", Problem("Bad filter.")},
                    {"404", Problem("No such queue.")}},
                   {{"type", "object"},
                    {"properties",
                     {{"ids", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                      {"errorContains", {{"type", "string"}}},
                      {"deadBefore", {{"type", "string"}, {"format", "date-time"}}}}}},
                   name)));

  router.Delete(
      "/v1/queues/{name}/dead-letters",
      [&broker, public_name](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::string_view queue_name, public_name(request));
        EVO_ASSIGN_OR_RETURN(const json body, OptionalObjectBody(request));
        EVO_ASSIGN_OR_RETURN(DeadLetterFilter filter, ParseFilter(body));
        EVO_ASSIGN_OR_RETURN(int64_t n, broker.PurgeDeadLetters(queue_name, filter));
        return http::Response::Json(200, {{"purged", n}});
      },
      Blocking(Doc("admin", "Purge dead letters (all, or filtered like redrive)",
                   "purgeDeadLetters",
                   {{"200", http::JsonResponseSpec("{\"purged\": n}.")},
                    {"400", Problem("Bad filter.")},
                    {"404", Problem("No such queue.")}},
                   nullptr, name)));
}

}  // namespace evo::queue
