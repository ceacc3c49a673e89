#include "http/router.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <map>

#include <spdlog/spdlog.h>

#include "core/utf8.hpp"
#include "http/problem.hpp"
#include "http/text.hpp"

namespace evo::http {
namespace {

// Deeper patterns are refused at registration, so a request path with more segments can be
// rejected before touching the tree, and match state fits in fixed arrays.
constexpr size_t kMaxSegments = 32;

struct Route {
  std::string method;
  std::string pattern;
  std::vector<std::string> param_names;
  Handler handler;
  RouteOptions options;
  AsyncHandler async_handler;  // set instead of `handler` for a deferred route
};

// Every route whose pattern ends at the same tree node (same shape, any method).
struct Endpoint {
  std::string pattern;  // the first pattern registered here
  std::vector<Route> routes;
  std::string allow;  // the Allow header value, kept in step with `routes`

  const Route* Exact(std::string_view method) const {
    for (const Route& route : routes) {
      if (route.method == method) {
        return &route;
      }
    }
    return nullptr;
  }
};

struct Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;
  // "{name}:verb" as the last segment, keyed by verb; always terminal.
  std::map<std::string, std::unique_ptr<Node>, std::less<>> verbs;
  Endpoint* endpoint = nullptr;
};

struct PatternSegment {
  enum Kind { kLiteral, kParam, kParamVerb } kind;
  std::string text;  // literal text or parameter name
  std::string verb;  // kParamVerb only
};

bool IsParamName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::optional<std::vector<PatternSegment>> ParsePattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return std::nullopt;
  }
  std::vector<PatternSegment> segments;
  if (pattern == "/") {
    return segments;
  }
  std::string_view rest = pattern.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    if (segment.empty()) {
      return std::nullopt;
    }
    if (segment.front() == '{') {
      const size_t close = segment.find('}');
      if (close == std::string_view::npos || !IsParamName(segment.substr(1, close - 1))) {
        return std::nullopt;
      }
      const std::string_view name = segment.substr(1, close - 1);
      const std::string_view tail = segment.substr(close + 1);
      if (tail.empty()) {
        segments.push_back({PatternSegment::kParam, std::string(name), {}});
      } else if (last && tail.size() > 1 && tail.front() == ':' &&
                 tail.find_first_of("{}/:", 1) == std::string_view::npos) {
        segments.push_back(
            {PatternSegment::kParamVerb, std::string(name), std::string(tail.substr(1))});
      } else {
        return std::nullopt;
      }
    } else {
      if (segment.find_first_of("{}") != std::string_view::npos) {
        return std::nullopt;
      }
      segments.push_back({PatternSegment::kLiteral, std::string(segment), {}});
    }
    if (last) {
      break;
    }
    rest = rest.substr(slash + 1);
  }
  if (segments.size() > kMaxSegments) {
    return std::nullopt;
  }
  return segments;
}

struct PathSegments {
  std::array<std::string_view, kMaxSegments> items;
  size_t size = 0;
};

// Splits an origin-form path ("/a/b") into raw segments. False when it is not origin-form or
// has more segments than any route can match.
bool SplitPath(std::string_view path, PathSegments& out) {
  if (path.empty() || path.front() != '/') {
    return false;
  }
  out.size = 0;
  if (path.size() == 1) {
    return true;
  }
  std::string_view rest = path.substr(1);
  while (true) {
    if (out.size == kMaxSegments) {
      return false;
    }
    const size_t slash = rest.find('/');
    out.items[out.size++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) {
      return true;
    }
    rest = rest.substr(slash + 1);
  }
}

// Dot segments and backslashes are never resolved: such a path does not name a route, so it
// is a 404 however it is spelled (".", "%2e%2E", "..\\x", "%5c").
bool IsTraversal(std::string_view path, const PathSegments& segments) {
  if (path.find('\\') != std::string_view::npos) {
    return true;
  }
  for (size_t i = 0; i < segments.size; ++i) {
    const std::string_view segment = segments.items[i];
    if (segment.find_first_of(".%") == std::string_view::npos) {
      continue;
    }
    const auto decoded = internal::PercentDecode(segment, false);
    if (!decoded) {
      continue;  // not a dot segment; parameter decoding reports the bad escape
    }
    if (*decoded == "." || *decoded == ".." || decoded->find('\\') != std::string::npos) {
      return true;
    }
  }
  return false;
}

struct MatchState {
  const Endpoint* endpoint = nullptr;
  std::array<std::string_view, kMaxSegments> params;
  size_t param_count = 0;
};

// Literal children first, then a parameter with a custom verb, then a plain parameter:
// literals beat parameters at the first segment where they differ. Every tree node is
// visited at most once, so backtracking stays linear in the tree size.
bool MatchNode(const Node& node, const PathSegments& segments, size_t i, MatchState& state) {
  if (i == segments.size) {
    if (node.endpoint != nullptr) {
      state.endpoint = node.endpoint;
      return true;
    }
    return false;
  }
  const std::string_view segment = segments.items[i];
  if (segment.empty()) {
    return false;
  }
  if (const auto it = node.literals.find(segment);
      it != node.literals.end() && MatchNode(*it->second, segments, i + 1, state)) {
    return true;
  }
  if (i + 1 == segments.size && !node.verbs.empty()) {
    const size_t colon = segment.rfind(':');
    if (colon != std::string_view::npos && colon > 0) {
      const auto it = node.verbs.find(segment.substr(colon + 1));
      if (it != node.verbs.end() && it->second->endpoint != nullptr) {
        state.params[state.param_count++] = segment.substr(0, colon);
        state.endpoint = it->second->endpoint;
        return true;
      }
    }
  }
  if (node.param) {
    state.params[state.param_count++] = segment;
    if (MatchNode(*node.param, segments, i + 1, state)) {
      return true;
    }
    --state.param_count;
  }
  return false;
}

std::string ComputeAllow(const std::vector<Route>& routes) {
  std::vector<std::string> methods;
  for (const Route& route : routes) {
    methods.push_back(route.method);
    if (route.method == "GET") {
      methods.emplace_back("HEAD");
    }
  }
  methods.emplace_back("OPTIONS");
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  std::string allow;
  for (const std::string& method : methods) {
    if (!allow.empty()) {
      allow += ", ";
    }
    allow += method;
  }
  return allow;
}

bool IsOpenApiMethod(std::string_view lower) {
  static constexpr std::array<std::string_view, 8> kMethods = {"get",     "put",  "post",  "delete",
                                                               "options", "head", "patch", "trace"};
  return std::find(kMethods.begin(), kMethods.end(), lower) != kMethods.end();
}

nlohmann::json ProblemSchema() {
  return {
      {"type", "object"},
      {"description", "RFC 9457 problem details."},
      {"required", {"type", "title", "status", "code"}},
      {"properties",
       {
           {"type", {{"type", "string"}, {"format", "uri-reference"}}},
           {"title", {{"type", "string"}}},
           {"status", {{"type", "integer"}}},
           {"detail", {{"type", "string"}}},
           {"instance", {{"type", "string"}}},
           {"code", {{"type", "string"}, {"description", "gRPC status code name."}}},
           {"reason",
            {{"type", "string"}, {"description", "Machine reason, e.g. MALFORMED_JSON."}}},
           {"errors",
            {{"type", "array"},
             {"items",
              {{"type", "object"},
               {"properties",
                {{"pointer", {{"type", "string"}}}, {"detail", {{"type", "string"}}}}}}}}},
       }},
  };
}

// The answers the server gives on every route before its handler runs (server.cpp), declared
// once under #/components/responses and referred to by every operation.
constexpr std::string_view kRefusedResponse = "RequestRefused";

nlohmann::json RefusedResponseSpec() {
  return ProblemResponseSpec(
      "Refused before the route runs: a malformed request or Host header (400), a body over "
      "the route's limit (413), a request-target too long (414) or header fields too large "
      "(431).");
}

// The operation's operationId, or "" when it declares none.
std::string_view OperationId(const RouteOptions& options) {
  if (!options.openapi.is_object()) {
    return {};
  }
  const auto it = options.openapi.find("operationId");
  return it != options.openapi.end() && it->is_string()
             ? std::string_view(it->get_ref<const std::string&>())
             : std::string_view();
}

// Adds to `responses` the 4xx answers the router and server give on `route` whatever its
// handler does, unless the route documents the code itself (its description is more precise).
void AddRouterResponses(const Route& route, const nlohmann::json& parameters,
                        nlohmann::json& responses) {
  const bool query = std::any_of(parameters.begin(), parameters.end(), [](const auto& p) {
    return p.is_object() && p.value("in", "") == "query";
  });
  // Router::Dispatch checks every path parameter; Request::Query, which every handler reads
  // its query parameters through, checks the whole query string.
  std::string bad_input;
  if (!route.param_names.empty()) {
    bad_input =
        "A path parameter is not valid (bad percent-encoding, a '/', control characters or "
        "invalid UTF-8).";
  }
  if (query) {
    bad_input += bad_input.empty() ? "" : " ";
    bad_input +=
        "The query string is malformed (bad percent-encoding, invalid UTF-8, control "
        "characters) or repeats a parameter.";
  }
  if (!bad_input.empty() && !responses.contains("400")) {
    responses["400"] = ProblemResponseSpec(bad_input);
  }
  if (!responses.contains("4XX")) {
    responses["4XX"] = {{"$ref", "#/components/responses/" + std::string(kRefusedResponse)}};
  }
}

// The operation's security requirement: none for a public route, else the bearer scheme
// with the scope, and the 401 and 403 answers the router gives.
void AddSecurity(const std::string& scope, nlohmann::json& operation, nlohmann::json& responses) {
  if (scope.empty()) {
    operation["security"] = nlohmann::json::array();
    return;
  }
  operation["security"] = {{{"bearer", {scope}}}};
  if (!responses.contains("401")) {
    responses["401"] = ProblemResponseSpec(
        "No credential, or one that is not accepted (WWW-Authenticate says why).");
  }
  if (!responses.contains("403")) {
    responses["403"] = ProblemResponseSpec("The credential lacks the scope " + scope + ".");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Headers, Request, Response

std::optional<std::string_view> Headers::Get(std::string_view name) const {
  for (const auto& [key, value] : fields_) {
    if (internal::IEquals(key, name)) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

size_t Headers::Count(std::string_view name) const {
  return static_cast<size_t>(std::count_if(fields_.begin(), fields_.end(), [&](const auto& f) {
    return internal::IEquals(f.first, name);
  }));
}

void Headers::Add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::Set(std::string name, std::string value) {
  std::erase_if(fields_, [&](const auto& f) { return internal::IEquals(f.first, name); });
  fields_.emplace_back(std::move(name), std::move(value));
}

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) {
      return value;
    }
  }
  return {};
}

Response Response::Json(int status, const nlohmann::json& value) {
  Response response;
  response.status = status;
  // `replace` keeps a handler's invalid UTF-8 from throwing halfway through an answer.
  response.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  response.headers.Set("Content-Type", "application/json");
  return response;
}

Response Response::Text(int status, std::string body, std::string content_type) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  response.headers.Set("Content-Type", std::move(content_type));
  return response;
}

Response Response::Empty(int status) {
  Response response;
  response.status = status;
  return response;
}

// ---------------------------------------------------------------------------------------------
// Router

struct Router::Impl {
  Node root;
  Authenticator authenticate;                        // empty: authentication off
  std::vector<std::unique_ptr<Endpoint>> endpoints;  // registration order
  // operationId -> "METHOD pattern" of the route that declares it.
  std::map<std::string, std::string, std::less<>> operation_ids;

  // The endpoint for `path` and its raw parameter values; false for no route (404).
  bool Resolve(std::string_view path, MatchState& state) const {
    PathSegments segments;
    if (!SplitPath(path, segments) || IsTraversal(path, segments)) {
      return false;
    }
    return MatchNode(root, segments, 0, state);
  }

  // Routes `request`. A synchronous route's (or an error's) answer is returned; for an async
  // route `*deferred` is set to it and nullopt returned, the caller then runs it.
  void Add(std::string method, std::string pattern, Handler handler, AsyncHandler async_handler,
           RouteOptions options);
  std::optional<Response> RouteOrThrow(Request& request, std::string_view& route_label,
                                       const Route** deferred, bool& implicit_head) const;
  // Sets request.principal for `route`; the 401/403 answer when the request may not run it.
  std::optional<Response> Authorize(const Route& route, Request& request) const;
};

namespace {

// What Dispatch does to every handler answer.
Response Finish(StatusOr<Response> result, bool implicit_head) {
  Response response = result.ok() ? std::move(result).value() : ProblemResponse(result.status());
  if (!response.body.empty() && !response.headers.Get("Content-Type")) {
    response.headers.Set("Content-Type", "application/octet-stream");
  }
  if (implicit_head) {
    response.headers.Set("Content-Length", std::to_string(response.body.size()));
    response.body.clear();
  }
  return response;
}

Response InternalErrorResponse() {
  try {
    return ProblemResponse(InternalError("internal error"));
  } catch (...) {
    // Only allocation can fail here; answer with what needs no allocation beyond a string.
    Response response;
    response.status = 500;
    return response;
  }
}

}  // namespace

Router::Router() : impl_(std::make_unique<Impl>()) {}
Router::~Router() = default;

void Router::Handle(std::string method, std::string pattern, Handler handler,
                    RouteOptions options) {
  impl_->Add(std::move(method), std::move(pattern), std::move(handler), {}, std::move(options));
}

void Router::HandleAsync(std::string method, std::string pattern, AsyncHandler handler,
                         RouteOptions options) {
  impl_->Add(std::move(method), std::move(pattern), {}, std::move(handler), std::move(options));
}

void Router::SetAuthenticator(Authenticator authenticate) {
  impl_->authenticate = std::move(authenticate);
}

std::optional<Response> Router::Impl::Authorize(const Route& route, Request& request) const {
  request.principal = auth::Principal();
  const std::string& scope = route.options.scope;
  if (scope.empty()) {
    return std::nullopt;
  }
  if (!authenticate) {
    request.principal = auth::Principal::Admin();
    return std::nullopt;
  }
  StatusOr<auth::Principal> who = UnauthenticatedError("a bearer token is required");
  // A token in a URL ends up in logs and proxies (RFC 6750 §2.3 discourages it): refused
  // whatever it holds. Any query string that mentions it counts, even a malformed one.
  if (request.query.find("access_token") != std::string::npos) {
    who = UnauthenticatedError(
        "tokens are accepted only in the Authorization header, not the query string");
  } else {
    who = authenticate(request);
  }
  if (!who.ok()) {
    Status refused =
        UnauthenticatedError(who.status().message()).With(kPayloadReason, "UNAUTHENTICATED");
    refused.SetPayload(kPayloadHttpHeaders,
                       "WWW-Authenticate: Bearer realm=\"evo\", error=\"invalid_token\"");
    return ProblemResponse(refused);
  }
  if (!who->Has(scope)) {
    Status refused = PermissionDeniedError("this operation needs the scope '" + scope + "'")
                         .With(kPayloadReason, "INSUFFICIENT_SCOPE");
    refused.SetPayload(kPayloadHttpHeaders,
                       "WWW-Authenticate: Bearer realm=\"evo\", error=\"insufficient_scope\", "
                       "scope=\"" +
                           scope + "\"");
    return ProblemResponse(refused);
  }
  request.principal = std::move(*who);
  return std::nullopt;
}

void Router::Impl::Add(std::string method, std::string pattern, Handler handler,
                       AsyncHandler async_handler, RouteOptions options) {
  const auto segments = ParsePattern(pattern);
  if (!segments || method.empty() || !internal::IsToken(method)) {
    // Registration happens at start-up from our own code: log loudly, keep serving.
    spdlog::error("http: invalid route {} '{}' ignored", method, pattern);
    return;
  }
  Node* node = &root;
  std::vector<std::string> names;
  for (const PatternSegment& segment : *segments) {
    std::unique_ptr<Node>* child = nullptr;
    switch (segment.kind) {
      case PatternSegment::kLiteral:
        child = &node->literals[segment.text];
        break;
      case PatternSegment::kParam:
        child = &node->param;
        names.push_back(segment.text);
        break;
      case PatternSegment::kParamVerb:
        child = &node->verbs[segment.verb];
        names.push_back(segment.text);
        break;
    }
    if (!*child) {
      *child = std::make_unique<Node>();
    }
    node = child->get();
  }
  if (node->endpoint == nullptr) {
    auto endpoint = std::make_unique<Endpoint>();
    endpoint->pattern = pattern;
    node->endpoint = endpoint.get();
    endpoints.push_back(std::move(endpoint));
  }
  Endpoint& endpoint = *node->endpoint;
  Route route{std::move(method),  std::move(pattern), std::move(names),
              std::move(handler), std::move(options), std::move(async_handler)};
  const auto existing = std::find_if(endpoint.routes.begin(), endpoint.routes.end(),
                                     [&](const Route& r) { return r.method == route.method; });
  if (existing != endpoint.routes.end()) {
    operation_ids.erase(std::string(OperationId(existing->options)));
  }
  if (const std::string_view id = OperationId(route.options); !id.empty()) {
    const auto [other, inserted] =
        operation_ids.try_emplace(std::string(id), route.method + " " + route.pattern);
    if (!inserted) {
      // Client generators name functions after it: a duplicate is a bug in our route table
      // that every test run that starts the server would hit, so it stops the process.
      std::fprintf(stderr, "evo::http: operationId '%s' of %s %s is already used by %s\n",
                   std::string(id).c_str(), route.method.c_str(), route.pattern.c_str(),
                   other->second.c_str());
      std::abort();
    }
  }
  if (existing != endpoint.routes.end()) {
    *existing = std::move(route);
  } else {
    endpoint.routes.push_back(std::move(route));
  }
  endpoint.allow = ComputeAllow(endpoint.routes);
}

void Router::Get(std::string pattern, Handler h, RouteOptions o) {
  Handle("GET", std::move(pattern), std::move(h), std::move(o));
}
void Router::Post(std::string pattern, Handler h, RouteOptions o) {
  Handle("POST", std::move(pattern), std::move(h), std::move(o));
}
void Router::Put(std::string pattern, Handler h, RouteOptions o) {
  Handle("PUT", std::move(pattern), std::move(h), std::move(o));
}
void Router::Patch(std::string pattern, Handler h, RouteOptions o) {
  Handle("PATCH", std::move(pattern), std::move(h), std::move(o));
}
void Router::Delete(std::string pattern, Handler h, RouteOptions o) {
  Handle("DELETE", std::move(pattern), std::move(h), std::move(o));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match match;
  MatchState state;
  if (!impl_->Resolve(path, state)) {
    return match;
  }
  match.found = true;
  const Route* route = state.endpoint->Exact(method);
  if (route == nullptr && method == "HEAD") {
    route = state.endpoint->Exact("GET");
  }
  match.method_allowed = route != nullptr || method == "OPTIONS";
  match.route = route != nullptr ? route->pattern : state.endpoint->pattern;
  match.max_body_bytes = route != nullptr ? route->options.max_body_bytes : 0;
  match.blocking = route != nullptr && route->options.blocking;
  match.blocking_above_body_bytes = route != nullptr ? route->options.blocking_above_body_bytes : 0;
  return match;
}

std::optional<Response> Router::Impl::RouteOrThrow(Request& request, std::string_view& route_label,
                                                   const Route** deferred,
                                                   bool& implicit_head) const {
  MatchState state;
  if (!Resolve(request.path, state)) {
    return ProblemResponse(
        NotFoundError("no route matches the request path").With(kPayloadReason, "NO_ROUTE"));
  }
  const Endpoint& endpoint = *state.endpoint;
  route_label = endpoint.pattern;
  const Route* route = endpoint.Exact(request.method);
  implicit_head = false;
  if (route == nullptr && request.method == "HEAD") {
    route = endpoint.Exact("GET");
    implicit_head = route != nullptr;
  }
  if (route == nullptr) {
    if (request.method == "OPTIONS") {
      Response response = Response::Empty(204);
      response.headers.Set("Allow", endpoint.allow);
      return response;
    }
    Response response =
        ProblemResponse(UnimplementedError("the method is not allowed on this resource")
                            .With(kPayloadHttpStatus, "405")
                            .With(kPayloadReason, "METHOD_NOT_ALLOWED"));
    response.headers.Set("Allow", endpoint.allow);
    return response;
  }
  route_label = route->pattern;

  request.params.clear();
  for (size_t i = 0; i < state.param_count; ++i) {
    auto decoded = internal::PercentDecode(state.params[i], false);
    // A decoded '/' would let one segment stand for two; NUL and controls have no place in
    // an identifier and confuse C APIs and logs further down.
    if (!decoded || decoded->find('/') != std::string::npos ||
        internal::HasControlChars(*decoded) || !utf8::IsValid(*decoded)) {
      return ProblemResponse(
          InvalidArgumentError("path parameter '" + route->param_names[i] + "' is not valid")
              .With(kPayloadReason, "INVALID_PATH_PARAMETER"));
    }
    request.params.emplace_back(route->param_names[i], std::move(*decoded));
  }

  if (std::optional<Response> refused = Authorize(*route, request)) {
    return refused;
  }
  if (route->async_handler) {
    *deferred = route;
    return std::nullopt;
  }
  return Finish(route->handler(request), implicit_head);
}

Response Router::Dispatch(Request& request) const {
  std::promise<Response> answer;
  std::future<Response> future = answer.get_future();
  std::optional<Response> now = DispatchDeferred(
      request, [&answer](Response response) { answer.set_value(std::move(response)); });
  Response response = now ? std::move(*now) : future.get();
  PrepareResponse(response);
  return response;
}

void PrepareResponse(Response& response) {
  if (!response.prepare) {
    return;
  }
  auto prepare = std::move(response.prepare);
  response.prepare = nullptr;
  try {
    prepare(response);
    return;
  } catch (const std::exception& e) {
    spdlog::error("http: preparing a response threw: {}", e.what());
  } catch (...) {
    spdlog::error("http: preparing a response threw a non-standard exception");
  }
  response = InternalErrorResponse();
}

std::optional<Response> Router::DispatchDeferred(Request& request,
                                                 std::function<void(Response)> finish) const {
  std::string_view route_label = "unmatched";
  const Route* deferred = nullptr;
  bool implicit_head = false;
  try {
    std::optional<Response> response =
        impl_->RouteOrThrow(request, route_label, &deferred, implicit_head);
    if (response) {
      return response;
    }
    // Shared so that an exception thrown after the handler already replied cannot answer twice.
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto done = std::make_shared<std::function<void(Response)>>(std::move(finish));
    try {
      deferred->async_handler(request, [once, done, implicit_head](StatusOr<Response> result) {
        if (!once->exchange(true)) {
          (*done)(Finish(std::move(result), implicit_head));
        }
      });
    } catch (...) {
      spdlog::error("http: async handler for {} {} threw (request {})", request.method, route_label,
                    request.request_id);
      if (!once->exchange(true)) {
        (*done)(InternalErrorResponse());
      }
    }
    return std::nullopt;
  } catch (const std::exception& e) {
    spdlog::error("http: handler for {} {} threw: {} (request {})", request.method, route_label,
                  e.what(), request.request_id);
  } catch (...) {
    spdlog::error("http: handler for {} {} threw a non-standard exception (request {})",
                  request.method, route_label, request.request_id);
  }
  return InternalErrorResponse();
}

nlohmann::json Router::OpenApi(std::string_view title, std::string_view version) const {
  nlohmann::json paths = nlohmann::json::object();
  for (const auto& endpoint : impl_->endpoints) {
    for (const Route& route : endpoint->routes) {
      std::string method = route.method;
      std::transform(method.begin(), method.end(), method.begin(),
                     [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
      if (!IsOpenApiMethod(method)) {
        continue;
      }
      nlohmann::json operation =
          route.options.openapi.is_object() ? route.options.openapi : nlohmann::json::object();
      nlohmann::json& parameters = operation["parameters"];
      if (!parameters.is_array()) {
        parameters = nlohmann::json::array();
      }
      for (const std::string& name : route.param_names) {
        const bool declared =
            std::any_of(parameters.begin(), parameters.end(), [&](const nlohmann::json& p) {
              return p.is_object() && p.value("in", "") == "path" && p.value("name", "") == name;
            });
        if (!declared) {
          parameters.push_back({{"name", name},
                                {"in", "path"},
                                {"required", true},
                                {"schema", {{"type", "string"}}}});
        }
      }
      nlohmann::json& responses = operation["responses"];
      if (!responses.is_object()) {
        responses = nlohmann::json::object();
      }
      AddRouterResponses(route, parameters, responses);
      if (!operation.contains("security")) {  // unless the route declares its own
        AddSecurity(route.options.scope, operation, responses);
      }
      if (parameters.empty()) {
        operation.erase("parameters");
      }
      if (!responses.contains("default")) {
        responses["default"] = {{"description", "Error (RFC 9457 problem details)."},
                                {"content",
                                 {{"application/problem+json",
                                   {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
      }
      paths[route.pattern][method] = std::move(operation);
    }
  }
  // A relative server URL resolves against wherever this document was fetched from (OpenAPI
  // 3.1, Server Object), which is the instance (or the load balancer in front of several) that
  // answers the routes it lists, whatever address or port it listens on.
  return {
      {"openapi", "3.1.0"},
      {"info", {{"title", title}, {"version", version}}},
      {"servers", {{{"url", "/"}, {"description", "The evo instance serving this document."}}}},
      {"paths", std::move(paths)},
      {"security", {{{"bearer", nlohmann::json::array()}}}},
      {"components",
       {{"schemas", {{"Problem", ProblemSchema()}}},
        {"responses", {{kRefusedResponse, RefusedResponseSpec()}}},
        {"securitySchemes",
         {{"bearer",
           {{"type", "http"},
            {"scheme", "bearer"},
            {"description",
             "An evo API key (evo_...) or a JWT from the configured issuer, as "
             "`Authorization: Bearer <token>`. Each operation lists the scope it needs; "
             "\"admin\" implies every scope. Operations with an empty security list are "
             "public."}}}}}}},
  };
}

nlohmann::json ProblemResponseSpec(std::string_view description) {
  return {
      {"description", description},
      {"content",
       {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
}

Status InvalidField(std::string_view pointer, std::string_view message) {
  return InvalidArgumentError(message)
      .With(kPayloadReason, "INVALID_FIELD")
      .With(kPayloadPointer, std::string(pointer));
}

Status CheckIdentifier(std::string_view value, std::string_view pointer) {
  if (!internal::HasControlChars(value)) {
    return OkStatus();
  }
  return InvalidArgumentError("must not hold U+0000 or other control characters")
      .With(kPayloadReason, "INVALID_CHARACTER")
      .With(kPayloadPointer, std::string(pointer));
}

bool IsHeaderName(std::string_view name) { return internal::IsToken(name); }

StatusOr<size_t> PageSizeParam(const Request& request) {
  constexpr size_t kDefault = 50;
  constexpr size_t kMax = 1000;
  EVO_ASSIGN_OR_RETURN(auto text, request.Query("pageSize"));
  if (!text || text->empty()) {
    return kDefault;
  }
  size_t value = 0;
  bool ok = text->size() <= 9;
  for (char c : *text) {
    ok = ok && c >= '0' && c <= '9';
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  if (!ok || value < 1) {
    return InvalidField("#/pageSize", "pageSize must be a positive integer");
  }
  return std::min(value, kMax);
}

nlohmann::json PageParametersSpec() {
  return nlohmann::json::array(
      {{{"name", "pageSize"},
        {"in", "query"},
        {"schema", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}, {"default", 50}}}},
       {{"name", "pageToken"}, {"in", "query"}, {"schema", {{"type", "string"}}}}});
}

nlohmann::json JsonRequestSpec(nlohmann::json schema) {
  return {{"required", true}, {"content", {{"application/json", {{"schema", std::move(schema)}}}}}};
}

nlohmann::json JsonResponseSpec(std::string_view description, nlohmann::json schema) {
  return {{"description", description},
          {"content", {{"application/json", {{"schema", std::move(schema)}}}}}};
}

StatusOr<nlohmann::json> Request::JsonObjectBody() const {
  EVO_ASSIGN_OR_RETURN(nlohmann::json body, JsonBody());
  if (!body.is_object()) {
    return InvalidField("#", "the body must be a JSON object");
  }
  return body;
}

}  // namespace evo::http
