// JSON forms of the model, the stored endpoint, and the signed request of a delivery.
#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "core/logging.hpp"
#include "webhooks/internal.hpp"
#include "webhooks/signature.hpp"

namespace evo::webhooks {

using nlohmann::json;

std::string_view EndpointStateName(EndpointState state) {
  switch (state) {
    case EndpointState::kUnverified:
      return "unverified";
    case EndpointState::kActive:
      return "active";
    case EndpointState::kDisabled:
      return "disabled";
  }
  return "active";
}

std::string EndpointQueue(std::string_view endpoint_id) {
  return fmt::format("webhooks.ep.{}", endpoint_id);
}

namespace {

json HeadersJson(const Headers& headers) {
  json out = json::object();
  for (const auto& [name, value] : headers) {
    out[name] = value;
  }
  return out;
}

std::string Time(int64_t ms) { return ms > 0 ? FormatUnixMillis(ms) : std::string(); }

}  // namespace

json ToJson(const Application& a) {
  json out = {{"id", a.id}, {"name", a.name}, {"createdAt", Time(a.created_ms)}};
  out["uid"] = a.uid.empty() ? json(nullptr) : json(a.uid);
  return out;
}

json ToJson(const EventType& t) {
  return {{"name", t.name},
          {"description", t.description},
          {"schema", t.schema},
          {"createdAt", Time(t.created_ms)},
          {"updatedAt", Time(t.updated_ms)}};
}

json ToJson(const Endpoint& e, bool with_secret) {
  json out = {{"id", e.id},
              {"applicationId", e.application_id.empty() ? json(nullptr) : json(e.application_id)},
              {"url", e.url},
              {"description", e.description},
              {"eventTypes", e.event_types},
              {"filter", e.filter},
              {"rateLimitPerSecond", e.rate_limit_per_second},
              {"maxConcurrency", e.max_concurrency},
              {"ordered", e.ordered},
              {"headers", HeadersJson(e.headers)},
              {"state", EndpointStateName(e.state)},
              {"enabled", e.state == EndpointState::kActive},
              {"createdAt", Time(e.created_ms)},
              {"updatedAt", Time(e.updated_ms)}};
  if (!e.disabled_reason.empty()) {
    out["disabledReason"] = e.disabled_reason;
  }
  if (e.failing_since_ms > 0) {
    out["failingSince"] = Time(e.failing_since_ms);
  }
  out["asymmetric"] = e.asymmetric;
  if (e.asymmetric) {
    auto public_key = PublicKeyFor(e.signing_key);
    out["publicKey"] = public_key.ok() ? *public_key : std::string();
  }
  if (with_secret) {
    out["secret"] = e.secret;
  }
  return out;
}

json ToJson(const Message& m) {
  json out = {{"id", m.id},
              {"applicationId", m.application_id.empty() ? json(nullptr) : json(m.application_id)},
              {"eventType", m.event_type},
              {"payload", m.payload},
              {"createdAt", Time(m.created_ms)}};
  if (!m.event_id.empty()) {
    out["eventId"] = m.event_id;
  }
  return out;
}

json ToJson(const Attempt& a) {
  json out = {{"id", a.id},
              {"messageId", a.message_id},
              {"endpointId", a.endpoint_id},
              {"attempt", a.attempt},
              {"createdAt", Time(a.created_ms)},
              {"url", a.url},
              {"requestHeaders", HeadersJson(a.request_headers)},
              {"responseStatus", a.response_status},
              {"responseBody", a.response_body},
              {"latencyMs", static_cast<double>(a.latency_us) / 1000.0},
              {"outcome", a.outcome}};
  if (!a.error.empty()) {
    out["error"] = a.error;
  }
  return out;
}

json StoredEndpoint(const Endpoint& e) {
  json out = ToJson(e, true);
  out["disabledReason"] = e.disabled_reason;  // also when empty: a re-enable clears it
  out["previousSecret"] = e.previous_secret;
  out["signingKey"] = e.signing_key;
  out["previousSigningKey"] = e.previous_signing_key;
  out["previousSecretUntilMs"] = e.previous_secret_until_ms;
  out["failingSinceMs"] = e.failing_since_ms;
  out["createdMs"] = e.created_ms;
  out["updatedMs"] = e.updated_ms;
  return out;
}

namespace {

// The field, or nullptr when absent or null.
const json* Field(const json& j, const char* key) {
  if (!j.is_object()) {
    return nullptr;
  }
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

Status WrongType(const char* key, const char* type) {
  return DataLossError(fmt::format("stored \"{}\" is not {}", key, type));
}

}  // namespace

StatusOr<std::string> StoredString(const json& j, const char* key, std::string fallback) {
  const json* v = Field(j, key);
  if (v == nullptr) {
    return fallback;
  }
  if (!v->is_string()) {
    return WrongType(key, "a string");
  }
  return v->get_ref<const std::string&>();
}

StatusOr<int64_t> StoredInt(const json& j, const char* key, int64_t fallback) {
  const json* v = Field(j, key);
  if (v == nullptr) {
    return fallback;
  }
  if (v->is_number_integer()) {
    return v->get<int64_t>();
  }
  return WrongType(key, "an integer");
}

StatusOr<double> StoredNumber(const json& j, const char* key, double fallback) {
  const json* v = Field(j, key);
  if (v == nullptr) {
    return fallback;
  }
  if (!v->is_number()) {
    return WrongType(key, "a number");
  }
  return v->get<double>();
}

StatusOr<bool> StoredBool(const json& j, const char* key, bool fallback) {
  const json* v = Field(j, key);
  if (v == nullptr) {
    return fallback;
  }
  if (!v->is_boolean()) {
    return WrongType(key, "a boolean");
  }
  return v->get<bool>();
}

StatusOr<Endpoint> EndpointFromStored(const json& j) {
  EVO_ASSIGN_OR_RETURN(std::string id, StoredString(j, "id"));
  if (id.empty()) {
    return DataLossError("stored endpoint without an id");
  }
  Endpoint e;
  e.id = std::move(id);
  EVO_ASSIGN_OR_RETURN(e.url, StoredString(j, "url"));
  EVO_ASSIGN_OR_RETURN(e.application_id, StoredString(j, "applicationId"));
  EVO_ASSIGN_OR_RETURN(e.description, StoredString(j, "description"));
  if (const json* types = Field(j, "eventTypes")) {
    if (!types->is_array()) {
      return WrongType("eventTypes", "an array");
    }
    for (const json& t : *types) {
      if (!t.is_string()) {
        return WrongType("eventTypes", "an array of strings");
      }
      e.event_types.push_back(t.get_ref<const std::string&>());
    }
  }
  if (const json* filter = Field(j, "filter")) {
    e.filter = *filter;
  }
  EVO_ASSIGN_OR_RETURN(e.secret, StoredString(j, "secret"));
  EVO_ASSIGN_OR_RETURN(e.previous_secret, StoredString(j, "previousSecret"));
  EVO_ASSIGN_OR_RETURN(e.asymmetric, StoredBool(j, "asymmetric"));
  EVO_ASSIGN_OR_RETURN(e.signing_key, StoredString(j, "signingKey"));
  EVO_ASSIGN_OR_RETURN(e.previous_signing_key, StoredString(j, "previousSigningKey"));
  EVO_ASSIGN_OR_RETURN(e.previous_secret_until_ms, StoredInt(j, "previousSecretUntilMs"));
  EVO_ASSIGN_OR_RETURN(e.rate_limit_per_second, StoredNumber(j, "rateLimitPerSecond"));
  EVO_ASSIGN_OR_RETURN(int64_t max_concurrency, StoredInt(j, "maxConcurrency", 10));
  e.max_concurrency = static_cast<int>(std::clamp<int64_t>(max_concurrency, 1, 1000));
  EVO_ASSIGN_OR_RETURN(e.ordered, StoredBool(j, "ordered"));
  if (const json* headers = Field(j, "headers")) {
    if (!headers->is_object()) {
      return WrongType("headers", "an object");
    }
    for (const auto& [k, v] : headers->items()) {
      if (!v.is_string()) {
        return WrongType("headers", "an object of strings");
      }
      e.headers.emplace_back(k, v.get_ref<const std::string&>());
    }
  }
  EVO_ASSIGN_OR_RETURN(std::string state, StoredString(j, "state", "active"));
  e.state = state == "disabled"     ? EndpointState::kDisabled
            : state == "unverified" ? EndpointState::kUnverified
                                    : EndpointState::kActive;
  EVO_ASSIGN_OR_RETURN(e.disabled_reason, StoredString(j, "disabledReason"));
  EVO_ASSIGN_OR_RETURN(e.failing_since_ms, StoredInt(j, "failingSinceMs"));
  EVO_ASSIGN_OR_RETURN(e.created_ms, StoredInt(j, "createdMs"));
  EVO_ASSIGN_OR_RETURN(e.updated_ms, StoredInt(j, "updatedMs"));
  return e;
}

StatusOr<Attempt> AttemptFromStored(int64_t seq, std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (!j.is_object()) {
    return DataLossError(fmt::format("stored attempt {} is not a JSON object", seq));
  }
  Attempt a;
  a.id = fmt::format("att_{}", seq);
  EVO_ASSIGN_OR_RETURN(a.message_id, StoredString(j, "messageId"));
  EVO_ASSIGN_OR_RETURN(a.endpoint_id, StoredString(j, "endpointId"));
  EVO_ASSIGN_OR_RETURN(int64_t attempt, StoredInt(j, "attempt"));
  a.attempt = static_cast<int>(std::clamp<int64_t>(attempt, 0, INT32_MAX));
  EVO_ASSIGN_OR_RETURN(a.created_ms, StoredInt(j, "createdMs"));
  EVO_ASSIGN_OR_RETURN(a.url, StoredString(j, "url"));
  if (const json* headers = Field(j, "requestHeaders")) {
    if (!headers->is_object()) {
      return WrongType("requestHeaders", "an object");
    }
    for (const auto& [k, v] : headers->items()) {
      a.request_headers.emplace_back(
          k, v.is_string() ? v.get_ref<const std::string&>()
                           : v.dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  EVO_ASSIGN_OR_RETURN(int64_t status, StoredInt(j, "responseStatus"));
  a.response_status = static_cast<int>(std::clamp<int64_t>(status, 0, 999));
  EVO_ASSIGN_OR_RETURN(a.response_body, StoredString(j, "responseBody"));
  EVO_ASSIGN_OR_RETURN(a.latency_us, StoredInt(j, "latencyUs"));
  EVO_ASSIGN_OR_RETURN(a.error, StoredString(j, "error"));
  EVO_ASSIGN_OR_RETURN(a.outcome, StoredString(j, "outcome"));
  return a;
}

std::string DeliveryBody(std::string_view event_type, int64_t created_ms,
                         std::string_view payload_json) {
  std::string out = R"({"type":)";
  out += json(std::string(event_type)).dump();
  out += R"(,"timestamp":")";
  out += FormatUnixMillis(created_ms);
  out += R"(","data":)";
  out += payload_json;
  out += '}';
  return out;
}

namespace {

// Appends `text` as a JSON string. Written by hand because the recorder stores one of these per
// attempt; invalid UTF-8 (a response body can hold anything) goes through nlohmann's replacing
// serialiser instead.
void AppendJsonString(std::string& out, std::string_view text) {
  bool plain = true;
  for (unsigned char c : text) {
    if (c >= 0x80) {
      plain = false;
      break;
    }
  }
  if (!plain) {
    out += json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  out += '"';
  logging::AppendJsonEscaped(out, text);
  out += '"';
}

}  // namespace

std::string StoredAttempt(const Attempt& a) {
  std::string out;
  out.reserve(512 + a.response_body.size());
  out += R"({"messageId":)";
  AppendJsonString(out, a.message_id);
  out += R"(,"endpointId":)";
  AppendJsonString(out, a.endpoint_id);
  fmt::format_to(std::back_inserter(out), R"(,"attempt":{},"createdMs":{},"url":)", a.attempt,
                 a.created_ms);
  AppendJsonString(out, a.url);
  out += R"(,"requestHeaders":{)";
  bool first = true;
  for (const auto& [name, value] : a.request_headers) {
    if (!first) {
      out += ',';
    }
    first = false;
    AppendJsonString(out, name);
    out += ':';
    AppendJsonString(out, value);
  }
  fmt::format_to(std::back_inserter(out), R"(}},"responseStatus":{},"responseBody":)",
                 a.response_status);
  AppendJsonString(out, a.response_body);
  fmt::format_to(std::back_inserter(out), R"(,"latencyUs":{},"error":)", a.latency_us);
  AppendJsonString(out, a.error);
  out += R"(,"outcome":)";
  AppendJsonString(out, a.outcome);
  out += '}';
  return out;
}

std::shared_ptr<const std::string> BodyCache::Find(int64_t seq) const {
  std::lock_guard lock(mu_);
  auto it = bodies_.find(seq);
  return it == bodies_.end() ? nullptr : it->second;
}

void BodyCache::Put(int64_t seq, std::shared_ptr<const std::string> body) {
  std::lock_guard lock(mu_);
  const size_t size = body->size();
  if (!bodies_.emplace(seq, std::move(body)).second) {
    return;
  }
  order_.push_back(seq);
  bytes_ += size;
  while (bytes_ > max_bytes_ && order_.size() > 1) {
    auto it = bodies_.find(order_.front());
    bytes_ -= it->second->size();
    bodies_.erase(it);
    order_.pop_front();
  }
}

outbound::Request SignedRequest(const Endpoint& endpoint, std::string_view message_id,
                                std::string body, int64_t now_ms,
                                std::chrono::milliseconds timeout) {
  const int64_t ts = now_ms / 1000;
  std::string signatures;
  const bool in_grace = endpoint.previous_secret_until_ms >= now_ms;
  auto add = [&](const std::string& signature) {
    if (!signatures.empty()) {
      signatures += ' ';
    }
    signatures += signature;
  };
  if (endpoint.asymmetric) {
    for (const std::string* key : {&endpoint.signing_key, &endpoint.previous_signing_key}) {
      if (key->empty() || (key == &endpoint.previous_signing_key && !in_grace)) {
        continue;
      }
      auto seed = DecodeSigningKey(*key);
      auto signature = seed.ok() ? SignV1a(*seed, message_id, ts, body) : seed.status();
      if (signature.ok()) {
        add(*signature);
      }
    }
  } else {
    for (const std::string* secret : {&endpoint.secret, &endpoint.previous_secret}) {
      if (secret->empty() || (secret == &endpoint.previous_secret && !in_grace)) {
        continue;
      }
      auto key = DecodeSecret(*secret);
      if (key.ok()) {
        add(SignV1(*key, message_id, ts, body));
      }
    }
  }
  outbound::Request r;
  r.method = "POST";
  r.url = endpoint.url;
  r.timeout = timeout;
  r.headers = {{"Content-Type", "application/json"},
               {std::string(kWebhookIdHeader), std::string(message_id)},
               {std::string(kWebhookTimestampHeader), std::to_string(ts)},
               {std::string(kWebhookSignatureHeader), signatures}};
  for (const auto& h : endpoint.headers) {
    r.headers.push_back(h);
  }
  r.body = std::move(body);
  return r;
}

}  // namespace evo::webhooks
