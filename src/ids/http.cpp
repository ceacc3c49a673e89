// HTTP adapter of the ids module: routes, their OpenAPI descriptions and the ids metrics.
//
// Query parameters are parsed strictly (digits only: no sign, space, exponent or hex), as
// BAD_INPUTS.md asks. ID lists are written by hand rather than through nlohmann::json: IDs
// never need escaping and /v1/ids?count=10000 is a hot path.
#include "ids/http.hpp"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "ids/internal.hpp"

namespace evo::ids {
namespace {

using nlohmann::json;

constexpr int64_t kMaxCount = 10'000;
constexpr size_t kMaxDecodeIds = 1000;
constexpr size_t kMaxDecodeBodyBytes = 64 << 10;

// ---- Parameters ---------------------------------------------------------------------------

Status BadParameter(std::string_view name, std::string message) {
  return InvalidArgumentError(message)
      .With(kPayloadReason, "INVALID_PARAMETER")
      .With(kPayloadPointer, fmt::format("#/{}", name));
}

// `count`: absent -> 1; else 1..10000 written as plain decimal digits.
StatusOr<int64_t> ParseCount(const http::Request& request) {
  EVO_ASSIGN_OR_RETURN(std::optional<std::string> raw, request.Query("count"));
  if (!raw) {
    return int64_t{1};
  }
  int64_t value = 0;
  bool ok = !raw->empty() && raw->size() <= 5;  // checked first: five digits cannot overflow
  for (size_t i = 0; ok && i < raw->size(); ++i) {
    const char c = (*raw)[i];
    ok = c >= '0' && c <= '9';
    value = value * 10 + (c - '0');
  }
  if (!ok || value < 1 || value > kMaxCount) {
    return BadParameter("count", fmt::format("count must be an integer from 1 to {}, got \"{}\"",
                                             kMaxCount, internal::Excerpt(*raw)));
  }
  return value;
}

// `format`: absent -> `fallback` (nullopt = detect from the text).
StatusOr<std::optional<Format>> ParseFormatParam(const http::Request& request,
                                                 std::optional<Format> fallback) {
  EVO_ASSIGN_OR_RETURN(std::optional<std::string> raw, request.Query("format"));
  if (!raw) {
    return fallback;
  }
  auto format = ParseFormat(*raw);
  if (!format.ok()) {
    return BadParameter("format", std::string(format.status().message()));
  }
  return std::optional<Format>(*format);
}

struct Preference {
  int specificity = 0;  // 3 type/subtype, 2 type/*, 1 */*, 0 not acceptable at all
  double q = -1;
};

// The weight of the most specific media range in `accept` that matches type/subtype.
Preference Quality(std::string_view accept, std::string_view type, std::string_view subtype) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.remove_suffix(1);
    }
    return s;
  };
  auto iequals = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i]))) {
        return false;
      }
    }
    return true;
  };
  int best_specificity = 0;
  double best_q = -1;
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    const size_t semi = item.find(';');
    const std::string_view range = trim(item.substr(0, semi));
    const size_t slash = range.find('/');
    if (slash == std::string_view::npos) {
      continue;
    }
    const std::string_view t = range.substr(0, slash);
    const std::string_view s = range.substr(slash + 1);
    int specificity = 0;
    if (iequals(t, type) && iequals(s, subtype)) {
      specificity = 3;
    } else if (iequals(t, type) && s == "*") {
      specificity = 2;
    } else if (t == "*" && s == "*") {
      specificity = 1;
    }
    if (specificity <= best_specificity) {
      continue;
    }
    double q = 1;
    std::string_view params = semi == std::string_view::npos ? "" : item.substr(semi + 1);
    while (!params.empty()) {
      const size_t next = params.find(';');
      const std::string_view param = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        // Malformed weights count as 0 rather than failing the request.
        q = std::strtod(std::string(param.substr(2)).c_str(), nullptr);
        if (!(q >= 0 && q <= 1)) {
          q = 0;
        }
      }
    }
    best_specificity = specificity;
    best_q = q;
  }
  return {best_specificity, best_q};
}

// Plain text only when the client names it and does not like JSON as much.
bool WantsText(const http::Request& request) {
  const auto accept = request.headers.Get("Accept");
  if (!accept) {
    return false;
  }
  const Preference text = Quality(*accept, "text", "plain");
  const Preference json_pref = Quality(*accept, "application", "json");
  return text.specificity >= 2 && text.q > 0 && text.q > json_pref.q;
}

// {"<key>":["a","b"]} or one value per line, never cached: each answer is new IDs.
http::Response ListResponse(const http::Request& request, std::string_view key,
                            const std::vector<std::string>& values) {
  http::Response response;
  if (WantsText(request)) {
    std::string body;
    for (const std::string& v : values) {
      body += v;
      body += '\n';
    }
    response = http::Response::Text(200, std::move(body));
  } else {
    std::string body;
    body.reserve(values.size() * (values.empty() ? 0 : values[0].size() + 3) + key.size() + 8);
    body += "{\"";
    body += key;
    body += "\":[";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) {
        body += ',';
      }
      body += '"';
      body += values[i];
      body += '"';
    }
    body += "]}";
    response = http::Response::Text(200, std::move(body), "application/json");
  }
  response.headers.Set("Cache-Control", "no-store");
  response.headers.Set("Vary", "Accept");
  return response;
}

// ---- Decoding ------------------------------------------------------------------------------

// The latest tick this generator's configuration could have issued at `now`: a restart may
// start up to max_start_gap ahead of the clock and borrow max_borrow beyond that.
int64_t LatestPossibleTick(const Generator& generator, const Clock& clock) {
  const Options& o = generator.options();
  const int64_t tick_ms = o.layout.tick.count();
  const int64_t now_ms = UnixMillis(clock.Now()) - UnixMillis(o.layout.epoch);
  const int64_t now_ticks = now_ms >= 0 ? now_ms / tick_ms : -((-now_ms + tick_ms - 1) / tick_ms);
  const int64_t ahead_ms = (o.max_start_gap + o.max_borrow).count();
  return now_ticks + (ahead_ms + tick_ms - 1) / tick_ms + 1;
}

StatusOr<json> DescribeId(std::string_view text, std::optional<Format> format,
                          const Generator& generator, const Clock& clock) {
  EVO_ASSIGN_OR_RETURN(const Id id, format ? DecodeText(text, *format) : DecodeAnyText(text));
  const Decoded d = Decode(generator.layout(), id);
  if (d.timestamp_ticks > LatestPossibleTick(generator, clock)) {
    // FAILED_PRECONDITION rather than INVALID_ARGUMENT: the same ID becomes plausible once
    // the clock passes its timestamp, so the answer depends on the state of the world.
    return FailedPreconditionError(
               fmt::format("ID {} carries the timestamp {}, later than this layout can have "
                           "issued by now",
                           id, FormatUnixMillis(d.unix_millis)))
        .With(kPayloadHttpStatus, "422")
        .With(kPayloadReason, "ID_FROM_THE_FUTURE");
  }
  return json{
      {"id", Encode(id, Format::kDecimal)},
      {"timestamp", FormatUnixMillis(d.unix_millis)},
      {"unixMillis", d.unix_millis},
      {"workerId", d.worker_id},
      {"sequence", d.sequence},
      {"formats",
       {{"decimal", Encode(id, Format::kDecimal)},
        {"base32", Encode(id, Format::kBase32)},
        {"hex", Encode(id, Format::kHex)}}},
  };
}

// ---- Metrics -------------------------------------------------------------------------------

// The generator keeps its own counts; the registry reads them at scrape time, so the request
// path pays nothing for metrics.
void RegisterMetrics(metrics::Registry& registry, const Generator& generator) {
  const auto counter = [&](std::string name, std::string help, uint64_t Stats::*field) {
    registry.AddCounterCallback(std::move(name), std::move(help), [&generator, field] {
      return static_cast<double>(generator.stats().*field);
    });
  };
  counter("evo_ids_issued_total", "64-bit IDs issued.", &Stats::issued);
  counter("evo_ids_clock_backward_events_total", "Times the clock read behind the last issued ID.",
          &Stats::clock_backward_events);
  counter("evo_ids_sequence_exhaustions_total", "Times a tick's sequence numbers ran out.",
          &Stats::sequence_exhaustions);
  counter("evo_ids_unavailable_total",
          "ID requests refused (clock behind, lease lost, mark not persisted).",
          &Stats::unavailable);
  registry.AddGaugeCallback("evo_ids_worker_id", "Worker id this process holds.",
                            [&generator] { return static_cast<double>(generator.worker_id()); });
  registry.AddGaugeCallback(
      "evo_ids_high_water_mark_seconds",
      "Persisted high-water mark: no ID at or past it was issued (Unix seconds).",
      [&generator] { return static_cast<double>(generator.stats().mark_unix_millis) / 1000.0; });
}

// ---- OpenAPI -------------------------------------------------------------------------------

json CountParameter() {
  return {
      {"name", "count"},
      {"in", "query"},
      {"required", false},
      {"description", "How many to return."},
      {"schema", {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxCount}, {"default", 1}}}};
}

json FormatParameter(std::string_view description, bool with_default) {
  json schema = {{"type", "string"}, {"enum", {"decimal", "base32", "hex"}}};
  if (with_default) {
    schema["default"] = "decimal";
  }
  return {{"name", "format"},
          {"in", "query"},
          {"required", false},
          {"description", description},
          {"schema", schema}};
}

json ListResponseSpec(std::string_view key, json item_schema, std::string_view description) {
  return {
      {"description", description},
      {"headers",
       {{"Cache-Control",
         {{"description", "Always no-store."}, {"schema", {{"type", "string"}}}}}}},
      {"content",
       {{"application/json",
         {{"schema",
           {{"type", "object"},
            {"required", {key}},
            {"properties",
             {{key,
               {{"type", "array"},
                {"minItems", 1},
                {"maxItems", kMaxCount},
                {"items", std::move(item_schema)}}}}}}}}},
        {"text/plain",
         {{"schema", {{"type", "string"}, {"description", "One value per line."}}}}}}},
  };
}

json DecodedSchema() {
  const json int64_string = {{"type", "string"}, {"pattern", "^[0-9]{1,19}$"}};
  return {{"type", "object"},
          {"required", {"id", "timestamp", "unixMillis", "workerId", "sequence", "formats"}},
          {"properties",
           {{"id", int64_string},
            {"timestamp",
             {{"type", "string"},
              {"format", "date-time"},
              {"description", "Start of the ID's tick, RFC 3339 UTC with milliseconds."}}},
            {"unixMillis", {{"type", "integer"}}},
            {"workerId", {{"type", "integer"}, {"minimum", 0}}},
            {"sequence", {{"type", "integer"}, {"minimum", 0}}},
            {"formats",
             {{"type", "object"},
              {"properties",
               {{"decimal", int64_string},
                {"base32", {{"type", "string"}, {"pattern", "^[0-7][0-9A-HJKMNP-TV-Z]{12}$"}}},
                {"hex", {{"type", "string"}, {"pattern", "^[0-7][0-9a-f]{15}$"}}}}}}}}}};
}

const json kCommonErrors = {
    {"400", http::ProblemResponseSpec("Malformed parameter.")},
    {"503", http::ProblemResponseSpec("Not ready: the clock is behind the last issued ID or the "
                                      "high-water mark (see Retry-After).")},
};

}  // namespace

void RegisterRoutes(http::Router& router, Generator& generator, Uuid7Generator& uuids,
                    UlidGenerator& ulids, const Clock& clock, metrics::Registry& registry) {
  RegisterMetrics(registry, generator);

  http::RouteOptions issue;
  issue.scope = "ids:read";
  issue.openapi = {
      {"summary", "Issue 64-bit, time-ordered unique IDs"},
      {"description",
       "IDs of one process strictly increase and never repeat, across restarts too. Ask for "
       "text/plain to get one ID per line. Each ID is a string: 64-bit values exceed what "
       "JSON numbers carry exactly."},
      {"operationId", "issueIds"},
      {"tags", {"ids"}},
      {"parameters", {CountParameter(), FormatParameter("Text form of each ID.", true)}},
      {"responses",
       {{"200", ListResponseSpec("ids", {{"type", "string"}}, "The new IDs, in order.")},
        {"400", kCommonErrors.at("400")},
        {"503", kCommonErrors.at("503")}}},
  };
  router.Get(
      "/v1/ids",
      [&generator](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const int64_t count, ParseCount(request));
        EVO_ASSIGN_OR_RETURN(const std::optional<Format> format,
                             ParseFormatParam(request, Format::kDecimal));
        StatusOr<std::vector<Id>> ids = std::vector<Id>();
        if (count == 1) {
          auto id = generator.Next();
          ids = id.ok() ? StatusOr<std::vector<Id>>(std::vector<Id>{*id}) : id.status();
        } else {
          ids = generator.NextBatch(static_cast<size_t>(count));
        }
        if (!ids.ok()) {
          return ids.status();
        }
        std::vector<std::string> texts;
        texts.reserve(ids->size());
        for (Id id : *ids) {
          texts.push_back(Encode(id, *format));
        }
        return ListResponse(request, "ids", texts);
      },
      issue);

  http::RouteOptions describe;
  describe.scope = "ids:read";
  describe.openapi = {
      {"summary", "Decode an ID into its timestamp, worker and sequence"},
      {"operationId", "decodeId"},
      {"tags", {"ids"}},
      {"parameters",
       {{{"name", "id"},
         {"in", "path"},
         {"required", true},
         {"description", "The ID as decimal digits, 13 base32 or 16 hex characters."},
         {"schema", {{"type", "string"}, {"minLength", 1}, {"maxLength", 19}}}},
        FormatParameter("Text form of `id`; detected from its shape when absent.", false)}},
      {"responses",
       {{"200",
         {{"description", "The ID's fields."},
          {"content", {{"application/json", {{"schema", DecodedSchema()}}}}}}},
        {"400", http::ProblemResponseSpec("Not an ID in the given (or any) format.")},
        {"422",
         http::ProblemResponseSpec("A well-formed ID this layout cannot have issued yet "
                                   "(code FAILED_PRECONDITION, reason ID_FROM_THE_FUTURE).")}}},
  };
  router.Get(
      "/v1/ids/{id}",
      [&generator, &clock](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const std::optional<Format> format,
                             ParseFormatParam(request, std::nullopt));
        EVO_ASSIGN_OR_RETURN(json body, DescribeId(request.Param("id"), format, generator, clock));
        return http::Response::Json(200, body);
      },
      describe);

  http::RouteOptions decode_many;
  decode_many.max_body_bytes = kMaxDecodeBodyBytes;
  decode_many.scope = "ids:read";  // side-effect-free
  decode_many.openapi = {
      {"summary", "Decode many IDs at once"},
      {"description",
       "All or nothing: one bad ID fails the request, naming it by pointer. "
       "Unknown fields are ignored."},
      {"operationId", "decodeIds"},
      {"tags", {"ids"}},
      {"requestBody",
       {{"required", true},
        {"content",
         {{"application/json",
           {{"schema",
             {{"type", "object"},
              {"required", {"ids"}},
              {"properties",
               {{"ids",
                 {{"type", "array"},
                  {"minItems", 1},
                  {"maxItems", kMaxDecodeIds},
                  {"items", {{"type", "string"}, {"maxLength", 19}}}}},
                {"format", {{"type", "string"}, {"enum", {"decimal", "base32", "hex"}}}}}}}}}}}}}},
      {"responses",
       {{"200",
         {{"description", "Each ID's fields, in request order."},
          {"content",
           {{"application/json",
             {{"schema",
               {{"type", "object"},
                {"properties", {{"ids", {{"type", "array"}, {"items", DecodedSchema()}}}}}}}}}}}}},
        {"400", http::ProblemResponseSpec("Malformed body or ID.")},
        {"413", http::ProblemResponseSpec("Body larger than 64 KiB.")},
        {"415", http::ProblemResponseSpec("Body is not application/json.")},
        {"422", http::ProblemResponseSpec("An ID this layout cannot have issued yet.")}}},
  };
  router.Post(
      "/v1/ids:decode",
      [&generator, &clock](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonBody());
        if (!body.is_object()) {
          return InvalidArgumentError("the body must be a JSON object with an \"ids\" array")
              .With(kPayloadPointer, "#");
        }
        std::optional<Format> format;
        if (const auto it = body.find("format"); it != body.end()) {
          auto parsed = it->is_string()
                            ? ParseFormat(it->get<std::string>())
                            : StatusOr<Format>(InvalidArgumentError("format must be a string"));
          if (!parsed.ok()) {
            return InvalidArgumentError(parsed.status().message())
                .With(kPayloadPointer, "#/format");
          }
          format = *parsed;
        }
        const auto ids = body.find("ids");
        if (ids == body.end() || !ids->is_array() || ids->empty() || ids->size() > kMaxDecodeIds) {
          return InvalidArgumentError(
                     fmt::format("ids must be an array of 1..{} strings", kMaxDecodeIds))
              .With(kPayloadPointer, "#/ids");
        }
        json out = json::array();
        for (size_t i = 0; i < ids->size(); ++i) {
          const json& item = (*ids)[i];
          const std::string pointer = fmt::format("#/ids/{}", i);
          if (!item.is_string()) {
            return InvalidArgumentError("each ID must be a string").With(kPayloadPointer, pointer);
          }
          auto described = DescribeId(item.get_ref<const std::string&>(), format, generator, clock);
          if (!described.ok()) {
            Status s = described.status();
            s.SetPayload(kPayloadPointer, pointer);
            return s;
          }
          out.push_back(std::move(*described));
        }
        return http::Response::Json(200, json{{"ids", std::move(out)}});
      },
      decode_many);

  http::RouteOptions uuid_route;
  uuid_route.scope = "ids:read";
  uuid_route.openapi = {
      {"summary", "Issue UUIDv7s (RFC 9562)"},
      {"description", "Time-ordered UUIDs, increasing within this process; no coordination."},
      {"operationId", "issueUuids"},
      {"tags", {"ids"}},
      {"parameters",
       {CountParameter(),
        {{"name", "version"},
         {"in", "query"},
         {"required", false},
         {"description", "UUID version; only 7 is offered."},
         {"schema", {{"type", "integer"}, {"enum", {7}}, {"default", 7}}}}}},
      {"responses",
       {{"200", ListResponseSpec("uuids", {{"type", "string"}, {"format", "uuid"}},
                                 "The new UUIDs, in order.")},
        {"400", kCommonErrors.at("400")}}},
  };
  router.Get(
      "/v1/uuids",
      [&uuids](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const int64_t count, ParseCount(request));
        EVO_ASSIGN_OR_RETURN(const std::optional<std::string> version, request.Query("version"));
        if (version && *version != "7") {
          return BadParameter(
              "version", fmt::format("version must be 7, got \"{}\"", internal::Excerpt(*version)));
        }
        std::vector<std::string> texts;
        texts.reserve(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
          texts.push_back(FormatUuid(uuids.Next()));
        }
        return ListResponse(request, "uuids", texts);
      },
      uuid_route);

  http::RouteOptions ulid_route;
  ulid_route.scope = "ids:read";
  ulid_route.openapi = {
      {"summary", "Issue ULIDs"},
      {"description",
       "26-character Crockford base32, time-ordered and increasing within this "
       "process; no coordination."},
      {"operationId", "issueUlids"},
      {"tags", {"ids"}},
      {"parameters", {CountParameter()}},
      {"responses",
       {{"200", ListResponseSpec("ulids",
                                 {{"type", "string"}, {"pattern", "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"}},
                                 "The new ULIDs, in order.")},
        {"400", kCommonErrors.at("400")}}},
  };
  router.Get(
      "/v1/ulids",
      [&ulids](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const int64_t count, ParseCount(request));
        std::vector<std::string> texts;
        texts.reserve(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
          texts.push_back(FormatUlid(ulids.Next()));
        }
        return ListResponse(request, "ulids", texts);
      },
      ulid_route);
}

}  // namespace evo::ids
