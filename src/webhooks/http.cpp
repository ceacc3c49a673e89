// Request bodies are checked field by field (400 with a JSON pointer); unknown fields are
// ignored, output-only fields (id, state, createdAt...) too.
#include "webhooks/http.hpp"

#include <fmt/format.h>

#include "webhooks/internal.hpp"

namespace evo::webhooks {
namespace {

using nlohmann::json;

StatusOr<Page> PageOf(const http::Request& request) {
  Page page;
  EVO_ASSIGN_OR_RETURN(page.size, http::PageSizeParam(request));
  EVO_ASSIGN_OR_RETURN(auto token, request.Query("pageToken"));
  if (token && !token->empty()) {
    if (token->size() > 200) {
      return http::InvalidField("#/pageToken", "pageToken is not one this service issued");
    }
    page.after = *token;
  }
  return page;
}

// {"<items>": [...], "nextPageToken"?}: a full page may have more.
template <typename T, typename F>
http::Response PageAnswer(const char* items, const std::vector<T>& list, size_t size, F&& to_json,
                          std::string (*cursor)(const T&)) {
  json out = {{items, json::array()}};
  for (const T& item : list) {
    out[items].push_back(to_json(item));
  }
  if (list.size() == size && !list.empty()) {
    out["nextPageToken"] = cursor(list.back());
  }
  return http::Response::Json(200, out);
}

// Whether a string field is free text (a description: U+0000 is data) or names something (a
// URL, id, key, name, secret or time: control characters are a 400, see http::CheckIdentifier).
enum class Kind { kIdentifier, kText };

StatusOr<std::string> StringField(const json& body, const char* name, size_t max, bool required,
                                  Kind kind = Kind::kIdentifier) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) {
      return http::InvalidField(fmt::format("#/{}", name), fmt::format("{} is required", name));
    }
    return std::string();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().size() > max) {
    return http::InvalidField(fmt::format("#/{}", name),
                              fmt::format("{} must be a string of at most {} bytes", name, max));
  }
  if (kind == Kind::kIdentifier) {
    EVO_RETURN_IF_ERROR(
        http::CheckIdentifier(it->get_ref<const std::string&>(), fmt::format("#/{}", name)));
  }
  return it->get<std::string>();
}

// Applies the writable fields of `body` to `ep` (all optional except url on create).
Status ApplyEndpointFields(const json& body, Endpoint& ep, bool create) {
  if (create || body.contains("url")) {
    EVO_ASSIGN_OR_RETURN(ep.url, StringField(body, "url", 2048, true));
  }
  if (body.contains("description")) {
    EVO_ASSIGN_OR_RETURN(ep.description,
                         StringField(body, "description", 1024, false, Kind::kText));
  }
  if (const auto it = body.find("eventTypes"); it != body.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 100) {
      return http::InvalidField("#/eventTypes", "eventTypes is an array of event type names");
    }
    ep.event_types.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) {
        return http::InvalidField(fmt::format("#/eventTypes/{}", i), "a name is a string");
      }
      EVO_RETURN_IF_ERROR(http::CheckIdentifier((*it)[i].get_ref<const std::string&>(),
                                                fmt::format("#/eventTypes/{}", i)));
      ep.event_types.push_back((*it)[i].get<std::string>());
    }
  }
  if (body.contains("filter")) {
    ep.filter = body["filter"];
  }
  if (create) {
    EVO_ASSIGN_OR_RETURN(ep.secret, StringField(body, "secret", 200, false));
    EVO_ASSIGN_OR_RETURN(ep.application_id, StringField(body, "applicationId", 300, false));
  }
  if (const auto it = body.find("rateLimitPerSecond"); it != body.end()) {
    if (it->is_null()) {
      ep.rate_limit_per_second = 0;
    } else if (!it->is_number() || it->get<double>() < 0) {
      return http::InvalidField("#/rateLimitPerSecond", "rateLimitPerSecond is a number >= 0");
    } else {
      ep.rate_limit_per_second = it->get<double>();
    }
  }
  if (const auto it = body.find("maxConcurrency"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      return http::InvalidField("#/maxConcurrency", "maxConcurrency is an integer 1..1000");
    }
    ep.max_concurrency = static_cast<int>(std::clamp<int64_t>(it->get<int64_t>(), -1, 100'000));
  }
  if (const auto it = body.find("asymmetric"); it != body.end() && !it->is_null() && create) {
    if (!it->is_boolean()) {
      return http::InvalidField("#/asymmetric", "asymmetric is a boolean");
    }
    ep.asymmetric = it->get<bool>();
  }
  if (const auto it = body.find("ordered"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return http::InvalidField("#/ordered", "ordered is a boolean");
    }
    ep.ordered = it->get<bool>();
  }
  if (const auto it = body.find("enabled"); it != body.end() && !it->is_null() && !create) {
    if (!it->is_boolean()) {
      return http::InvalidField("#/enabled", "enabled is a boolean");
    }
    if (ep.state != EndpointState::kUnverified) {
      ep.state = it->get<bool>() ? EndpointState::kActive : EndpointState::kDisabled;
      if (!it->get<bool>()) {
        ep.disabled_reason = "disabled through the API";
      }
    }
  }
  if (const auto it = body.find("headers"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      return http::InvalidField("#/headers", "headers is an object of strings");
    }
    ep.headers.clear();
    for (const auto& [name, value] : it->items()) {
      if (!value.is_string() || name.empty() || name.size() > 128 ||
          value.get_ref<const std::string&>().size() > 4096) {
        return http::InvalidField(fmt::format("#/headers/{}", name),
                                  "a header is a name of 1..128 bytes and a string value");
      }
      const std::string pointer = fmt::format("#/headers/{}", name);
      // Sent on every delivery: a name that is not a token, or a CR/LF in a value, would
      // break the request or smuggle a header (security review, issue 18 §7).
      if (!http::IsHeaderName(name)) {
        return http::InvalidField(pointer, "a header name is an RFC 9110 token");
      }
      EVO_RETURN_IF_ERROR(http::CheckIdentifier(value.get_ref<const std::string&>(), pointer));
      ep.headers.emplace_back(name, value.get<std::string>());
    }
  }
  return OkStatus();
}

// A route's options: the scope it needs (webhooks:read, or webhooks:write for changes and
// for reading a signing secret) and its OpenAPI description.
http::RouteOptions Doc(std::string scope, std::string summary, std::string id, json responses) {
  http::RouteOptions o;
  o.scope = std::move(scope);
  o.openapi = {{"summary", std::move(summary)},
               {"operationId", std::move(id)},
               {"tags", {"webhooks"}},
               {"responses", std::move(responses)}};
  return o;
}

// Doc of a list route: it reads pageSize and pageToken (PageOf), and `extra` query parameters.
http::RouteOptions ListDoc(std::string scope, std::string summary, std::string id, json responses,
                           json extra = json::array()) {
  responses["400"] = http::ProblemResponseSpec("Bad pageSize or pageToken, or a malformed query.");
  http::RouteOptions o =
      Doc(std::move(scope), std::move(summary), std::move(id), std::move(responses));
  o.openapi["parameters"] = http::PageParametersSpec();
  for (json& parameter : extra) {
    o.openapi["parameters"].push_back(std::move(parameter));
  }
  return o;
}

json Problem(const char* what) { return http::ProblemResponseSpec(what); }

// A route whose handler waits for SQLite (a durable commit, a read of stored rows) or makes
// a synchronous broker call: it runs on the server's blocking pool, not an I/O thread.
http::RouteOptions Blocking(http::RouteOptions o) {
  o.blocking = true;
  return o;
}

std::string EndpointCursor(const Endpoint& e) { return e.id; }
std::string TypeCursor(const EventType& t) { return t.name; }
std::string AppCursor(const Application& a) { return a.id; }
std::string MessageCursor(const Message& m) { return m.id; }
std::string AttemptCursor(const Attempt& a) { return a.id; }

StatusOr<EventType> ParseEventType(const json& body, bool create, std::string name) {
  EventType t;
  if (create) {
    EVO_ASSIGN_OR_RETURN(t.name, StringField(body, "name", 128, true));
  } else {
    t.name = std::move(name);
  }
  EVO_ASSIGN_OR_RETURN(t.description, StringField(body, "description", 4096, false, Kind::kText));
  if (const auto it = body.find("schema"); it != body.end() && !it->is_null()) {
    if (!it->is_object() && !it->is_boolean()) {
      return http::InvalidField("#/schema", "schema is a JSON Schema (an object)");
    }
    t.schema = *it;
  }
  return t;
}

}  // namespace

void RegisterRoutes(http::Router& router, Service& service) {
  // ---- applications ----
  router.Post(
      "/v1/applications",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        Application app;
        EVO_ASSIGN_OR_RETURN(app.name, StringField(body, "name", 256, true));
        EVO_ASSIGN_OR_RETURN(app.uid, StringField(body, "uid", 256, false));
        EVO_ASSIGN_OR_RETURN(Application created, service.CreateApplication(std::move(app)));
        return http::Response::Json(201, ToJson(created));
      },
      Blocking(Doc("webhooks:write",
                   "Create an application (a tenant: its endpoints get only its messages)",
                   "createApplication",
                   {{"201", http::JsonResponseSpec("The application.")},
                    {"400", Problem("Bad name or uid.")},
                    {"409", Problem("The uid exists.")}})));
  router.Get(
      "/v1/applications",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_ASSIGN_OR_RETURN(auto list, service.ListApplications(page));
        return PageAnswer(
            "applications", list, page.size, [](const Application& a) { return ToJson(a); },
            &AppCursor);
      },
      ListDoc("webhooks:read", "List applications", "listApplications",
              {{"200", http::JsonResponseSpec("{\"applications\", \"nextPageToken\"?}.")}}));
  router.Get(
      "/v1/applications/{id}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Application a, service.GetApplication(request.Param("id")));
        return http::Response::Json(200, ToJson(a));
      },
      Doc("webhooks:read", "Get an application by id or uid", "getApplication",
          {{"200", http::JsonResponseSpec("The application.")}, {"404", Problem("Unknown.")}}));
  router.Delete(
      "/v1/applications/{id}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_RETURN_IF_ERROR(service.DeleteApplication(request.Param("id")));
        return http::Response::Empty(204);
      },
      Blocking(Doc("webhooks:write", "Delete an application (refused while endpoints belong to it)",
                   "deleteApplication",
                   {{"204", {{"description", "Deleted."}}},
                    {"404", Problem("Unknown.")},
                    {"409", Problem("Endpoints still belong to it.")}})));

  // ---- event types ----
  router.Post(
      "/v1/event-types",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        EVO_ASSIGN_OR_RETURN(EventType t, ParseEventType(body, true, ""));
        EVO_ASSIGN_OR_RETURN(EventType created, service.CreateEventType(std::move(t)));
        return http::Response::Json(201, ToJson(created));
      },
      Blocking(Doc("webhooks:write",
                   "Create an event type (name, description, optional JSON Schema of its payload)",
                   "createEventType",
                   {{"201", http::JsonResponseSpec("The event type.")},
                    {"400", Problem("Bad name or schema.")},
                    {"409", Problem("The name exists.")}})));
  router.Get(
      "/v1/event-types",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_ASSIGN_OR_RETURN(auto list, service.ListEventTypes(page));
        return PageAnswer(
            "eventTypes", list, page.size, [](const EventType& t) { return ToJson(t); },
            &TypeCursor);
      },
      ListDoc("webhooks:read", "List event types by name", "listEventTypes",
              {{"200", http::JsonResponseSpec("{\"eventTypes\", \"nextPageToken\"?}.")}}));
  router.Get(
      "/v1/event-types/{name}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(EventType t, service.GetEventType(request.Param("name")));
        return http::Response::Json(200, ToJson(t));
      },
      Doc("webhooks:read", "Get an event type", "getEventType",
          {{"200", http::JsonResponseSpec("The event type.")}, {"404", Problem("Unknown.")}}));
  router.Put(
      "/v1/event-types/{name}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        EVO_ASSIGN_OR_RETURN(EventType t,
                             ParseEventType(body, false, std::string(request.Param("name"))));
        EVO_ASSIGN_OR_RETURN(EventType updated, service.UpdateEventType(std::move(t)));
        return http::Response::Json(200, ToJson(updated));
      },
      Blocking(
          Doc("webhooks:write", "Replace an event type's description and schema", "updateEventType",
              {{"200", http::JsonResponseSpec("The event type.")}, {"404", Problem("Unknown.")}})));
  router.Delete(
      "/v1/event-types/{name}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_RETURN_IF_ERROR(service.DeleteEventType(request.Param("name")));
        return http::Response::Empty(204);
      },
      Blocking(Doc("webhooks:write", "Delete an event type", "deleteEventType",
                   {{"204", {{"description", "Deleted."}}}, {"404", Problem("Unknown.")}})));

  // ---- endpoints ----
  auto created_answer = [](http::Reply reply) {
    return [reply = std::move(reply)](const StatusOr<Service::Created>& r) {
      if (!r.ok()) {
        return reply(r.status());
      }
      const Service::Created& created = *r;
      json out = ToJson(created.endpoint, true);
      if (!created.verification_error.empty()) {
        out["verificationError"] = created.verification_error;
      }
      reply(http::Response::Json(201, out));
    };
  };
  router.HandleAsync(
      "POST", "/v1/endpoints",
      [&service, created_answer](const http::Request& request, http::Reply reply) {
        auto body = request.JsonObjectBody();
        if (!body.ok()) {
          return reply(body.status());
        }
        Endpoint ep;
        if (Status s = ApplyEndpointFields(*body, ep, true); !s.ok()) {
          return reply(s);
        }
        bool verify = true;
        if (const auto it = body->find("verify"); it != body->end() && !it->is_null()) {
          if (!it->is_boolean()) {
            return reply(http::InvalidField("#/verify", "verify is a boolean"));
          }
          verify = it->get<bool>();
        }
        service.CreateEndpoint(std::move(ep), verify, created_answer(std::move(reply)));
      },
      Blocking(Doc(
          "webhooks:write",
          "Create an endpoint; unless verify is false, evo first POSTs a signed "
          "{\"type\":\"webhook.verification\",\"challenge\"} that it must echo",
          "createEndpoint",
          {{"201", http::JsonResponseSpec("The endpoint with its secret; state \"unverified\" and "
                                          "verificationError when the handshake failed.")},
           {"400", Problem("Bad URL (scheme, SSRF guard), filter, field.")}})));
  router.HandleAsync(
      "POST", "/v1/endpoints/{id}:verify",
      [&service, created_answer](const http::Request& request, http::Reply reply) {
        service.VerifyEndpoint(request.Param("id"), created_answer(std::move(reply)));
      },
      Doc("webhooks:write", "Run the verification handshake again", "verifyEndpoint",
          {{"201", http::JsonResponseSpec("The endpoint.")}, {"404", Problem("Unknown.")}}));
  router.Get(
      "/v1/endpoints",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_ASSIGN_OR_RETURN(auto list, service.ListEndpoints(page));
        return PageAnswer(
            "endpoints", list, page.size, [](const Endpoint& e) { return ToJson(e, false); },
            &EndpointCursor);
      },
      ListDoc("webhooks:read", "List endpoints", "listEndpoints",
              {{"200", http::JsonResponseSpec("{\"endpoints\", \"nextPageToken\"?}.")}}));
  router.Get(
      "/v1/endpoints/{id}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Endpoint e, service.GetEndpoint(request.Param("id")));
        return http::Response::Json(200, ToJson(e, false));
      },
      Doc("webhooks:read", "Get an endpoint (without its secret)", "getEndpoint",
          {{"200", http::JsonResponseSpec("The endpoint.")}, {"404", Problem("Unknown.")}}));
  router.Get(
      "/v1/endpoints/{id}/secret",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Endpoint e, service.GetEndpoint(request.Param("id")));
        json out = {{"secret", e.secret}};
        if (e.asymmetric) {
          out["publicKey"] = ToJson(e, false)["publicKey"];
        }
        return http::Response::Json(200, out);
      },
      Doc("webhooks:write", "Get an endpoint's signing secret", "getEndpointSecret",
          {{"200", http::JsonResponseSpec("{\"secret\"}.")}, {"404", Problem("Unknown.")}}));
  router.Post(
      "/v1/endpoints/{id}/secret:rotate",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        json body = json::object();
        if (!request.body.empty()) {
          EVO_ASSIGN_OR_RETURN(body, request.JsonObjectBody());
        }
        EVO_ASSIGN_OR_RETURN(std::string secret, StringField(body, "secret", 200, false));
        EVO_ASSIGN_OR_RETURN(Endpoint e, service.RotateSecret(request.Param("id"), secret));
        json out = {{"secret", e.secret}};
        if (e.asymmetric) {
          out["publicKey"] = ToJson(e, false)["publicKey"];
        }
        return http::Response::Json(200, out);
      },
      Blocking(
          Doc("webhooks:write",
              "Rotate the signing secret; the old one keeps signing beside it for a grace period",
              "rotateEndpointSecret",
              {{"200", http::JsonResponseSpec("{\"secret\"}.")}, {"404", Problem("Unknown.")}})));
  auto update = [&service](const http::Request& request) -> StatusOr<http::Response> {
    EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
    // Applied to the endpoint as it is when written (under its write lock), not to a copy
    // read before: a concurrent rotation or disable is not undone.
    EVO_ASSIGN_OR_RETURN(Endpoint updated,
                         service.UpdateEndpoint(request.Param("id"), [&body](Endpoint& ep) {
                           return ApplyEndpointFields(body, ep, false);
                         }));
    return http::Response::Json(200, ToJson(updated, false));
  };
  router.Patch("/v1/endpoints/{id}", update,
               Blocking(Doc("webhooks:write",
                            "Change an endpoint (url, eventTypes, filter, rate limit, enabled...)",
                            "updateEndpoint",
                            {{"200", http::JsonResponseSpec("The endpoint.")},
                             {"400", Problem("Bad field.")},
                             {"404", Problem("Unknown.")}})));
  router.Delete(
      "/v1/endpoints/{id}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_RETURN_IF_ERROR(service.DeleteEndpoint(request.Param("id")));
        return http::Response::Empty(204);
      },
      Blocking(Doc("webhooks:write", "Delete an endpoint and its pending deliveries",
                   "deleteEndpoint",
                   {{"204", {{"description", "Deleted."}}}, {"404", Problem("Unknown.")}})));

  // ---- messages ----
  http::RouteOptions publish =
      Doc("webhooks:write",
          "Publish an event: answered once durable, then fanned out to every matching endpoint",
          "publishMessage",
          {{"202", http::JsonResponseSpec("{\"id\"}.")},
           {"400", Problem("Malformed body.")},
           {"413", Problem("Payload over the limit.")},
           {"422", Problem("Unknown event type, or a payload its schema rejects.")}});
  publish.max_body_bytes = 1 << 20;
  router.HandleAsync(
      "POST", "/v1/messages",
      [&service](const http::Request& request, http::Reply reply) {
        auto body = request.JsonObjectBody();
        if (!body.ok()) {
          return reply(body.status());
        }
        auto type = StringField(*body, "eventType", 128, true);
        auto event_id = StringField(*body, "eventId", 256, false);
        if (!type.ok() || !event_id.ok()) {
          return reply(type.ok() ? event_id.status() : type.status());
        }
        const auto payload = body->find("payload");
        if (payload == body->end()) {
          return reply(http::InvalidField("#/payload", "payload is required"));
        }
        std::string key = *event_id;
        if (auto header = request.headers.Get("Idempotency-Key"); header && !header->empty()) {
          if (header->size() > 256) {
            return reply(InvalidArgumentError("Idempotency-Key is at most 256 bytes"));
          }
          key = std::string(*header);
        }
        auto app = StringField(*body, "applicationId", 64, false);
        if (!app.ok()) {
          return reply(app.status());
        }
        service.Publish(*std::move(app), *std::move(type), *payload, std::move(key),
                        [reply = std::move(reply)](StatusOr<std::string> id) {
                          if (!id.ok()) {
                            return reply(id.status());
                          }
                          reply(http::Response::Json(202, {{"id", *id}}));
                        });
      },
      publish);
  router.Get(
      "/v1/messages",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_ASSIGN_OR_RETURN(auto type, request.Query("eventType"));
        EVO_ASSIGN_OR_RETURN(auto list, service.ListMessages(page, type.value_or("")));
        return PageAnswer(
            "messages", list, page.size, [](const Message& m) { return ToJson(m); },
            &MessageCursor);
      },
      Blocking(ListDoc(
          "webhooks:read", "List messages, oldest first (optionally ?eventType=)", "listMessages",
          {{"200", http::JsonResponseSpec("{\"messages\", \"nextPageToken\"?}.")}},
          {{{"name", "eventType"}, {"in", "query"}, {"schema", {{"type", "string"}}}}})));
  router.Get(
      "/v1/messages/{id}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Message m, service.GetMessage(request.Param("id")));
        return http::Response::Json(200, ToJson(m));
      },
      Blocking(
          Doc("webhooks:read", "Get a message", "getMessage",
              {{"200", http::JsonResponseSpec("The message.")}, {"404", Problem("Unknown.")}})));
  router.Get(
      "/v1/messages/{id}/attempts",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_ASSIGN_OR_RETURN(auto list, service.ListAttempts("", request.Param("id"), page));
        return PageAnswer(
            "attempts", list, page.size, [](const Attempt& a) { return ToJson(a); },
            &AttemptCursor);
      },
      Blocking(ListDoc("webhooks:read", "Delivery attempts of a message", "listMessageAttempts",
                       {{"200", http::JsonResponseSpec("{\"attempts\", \"nextPageToken\"?}.")}})));
  router.Get(
      "/v1/endpoints/{id}/attempts",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(Page page, PageOf(request));
        EVO_RETURN_IF_ERROR(service.GetEndpoint(request.Param("id")).status());
        EVO_ASSIGN_OR_RETURN(auto list, service.ListAttempts(request.Param("id"), "", page));
        return PageAnswer(
            "attempts", list, page.size, [](const Attempt& a) { return ToJson(a); },
            &AttemptCursor);
      },
      Blocking(
          ListDoc("webhooks:read",
                  "Delivery attempts to an endpoint: request headers, status, first 4 KiB of the "
                  "answer, latency, error",
                  "listEndpointAttempts",
                  {{"200", http::JsonResponseSpec("{\"attempts\", \"nextPageToken\"?}.")},
                   {"404", Problem("Unknown endpoint.")}})));
  router.Post(
      "/v1/endpoints/{id}/messages/{messageId}:replay",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_RETURN_IF_ERROR(service.Replay(request.Param("id"), request.Param("messageId")));
        return http::Response::Json(202, {{"replayed", true}});
      },
      Blocking(Doc("webhooks:write", "Deliver one message to one endpoint again", "replayMessage",
                   {{"202", http::JsonResponseSpec("Queued.")},
                    {"404", Problem("Unknown endpoint or message.")}})));
  router.Post(
      "/v1/endpoints/{id}:recover",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        EVO_ASSIGN_OR_RETURN(std::string since, StringField(body, "since", 64, true));
        auto t = ParseTimestamp(since);
        if (!t.ok()) {
          return http::InvalidField("#/since", "since is an RFC 3339 UTC time");
        }
        EVO_ASSIGN_OR_RETURN(int64_t n, service.Recover(request.Param("id"), UnixMillis(*t)));
        return http::Response::Json(202, {{"recovered", n}});
      },
      Blocking(Doc("webhooks:write",
                   "Deliver again every message of the endpoint that failed (or was held while it "
                   "was disabled) since a time",
                   "recoverEndpoint",
                   {{"202", http::JsonResponseSpec("{\"recovered\": n}.")},
                    {"400", Problem("Bad since.")},
                    {"404", Problem("Unknown endpoint.")}})));
}

}  // namespace evo::webhooks
