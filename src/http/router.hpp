// The HTTP adapter's contract: Request, Response and Router.
//
// Modules register routes in their `http.cpp` (`RegisterRoutes(http::Router&, ...)`); they
// never see Boost.Beast. The Router is the boundary no exception crosses: a handler returns
// StatusOr<Response>, and a non-OK Status (or a thrown exception, logged) becomes an RFC 9457
// application/problem+json answer through the one Status -> HTTP table in problem.hpp.
//
// Patterns are absolute paths whose segments are literals or `{name}` parameters, matching
// exactly one non-empty segment: "/v1/ids/{id}". A literal may end in a custom verb after a
// colon ("/v1/spam/models/{version}:activate"). Literal routes win over parameter routes.
//
// Thread safety: register every route before the server starts; Dispatch and OpenApi may
// then be called from any number of threads.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "auth/principal.hpp"
#include "core/status.hpp"

namespace evo::http {

// Header list with case-insensitive lookup. Names are stored as received.
class Headers {
 public:
  // First value of `name` (case-insensitive), if present.
  std::optional<std::string_view> Get(std::string_view name) const;
  // Number of fields called `name`.
  size_t Count(std::string_view name) const;
  void Add(std::string name, std::string value);
  // Replaces every field called `name` with one.
  void Set(std::string name, std::string value);
  const std::vector<std::pair<std::string, std::string>>& All() const { return fields_; }
  // Removes every field (the server reuses one Request per connection).
  void Clear() { fields_.clear(); }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

struct Request {
  std::string method;  // upper case as received: "GET"
  std::string target;  // raw request-target: "/v1/ids?count=2"
  std::string path;    // raw (still percent-encoded) path part of target
  std::string query;   // raw query string after '?', without it
  Headers headers;
  std::string body;
  // Filled in by the server before dispatch.
  std::string request_id;  // X-Request-Id echoed or generated
  std::string trace_id;    // 32 lower-case hex of the W3C trace (started if absent/invalid)
  std::string span_id;     // 16 hex: this request's span
  // Filled in by the router: decoded `{param}` values of the matched route.
  std::vector<std::pair<std::string, std::string>> params;
  // Filled in by the router: who the request acts as. On a route with a scope, the verified
  // credential's principal (admin when authentication is off); anonymous on a public route.
  auth::Principal principal;

  // The decoded value of route parameter `name` (empty if the route has none).
  std::string_view Param(std::string_view name) const;

  // The single decoded value of query parameter `name` ('+' is a space), nullopt when
  // absent. InvalidArgument (400, reason INVALID_QUERY) when it is repeated, or when any
  // pair of the query is badly percent-encoded, not UTF-8, or holds control characters.
  StatusOr<std::optional<std::string>> Query(std::string_view name) const;

  // The body parsed as a JSON document. Checks, in order: Content-Type is application/json
  // (charset, if given, utf-8) else 415 (Unsupported Media Type, with Accept-Post/Patch;
  // reason UNSUPPORTED_MEDIA_TYPE); body non-empty else 400 (reason BODY_REQUIRED); valid
  // UTF-8, nesting depth <= 64, no duplicate object keys (kPayloadPointer names the key),
  // finite numbers, no trailing garbage else 400 with reason MALFORMED_JSON. Strings and keys
  // may hold U+0000 (valid JSON; see CheckIdentifier). Any top-level type is returned:
  // checking for an object is the handler's job.
  StatusOr<nlohmann::json> JsonBody() const;
  // JsonBody() that must be an object: anything else is InvalidField("#", ...).
  StatusOr<nlohmann::json> JsonObjectBody() const;

  // The value for a W3C `traceparent` header to send on outbound calls made for this request.
  std::string OutboundTraceparent(std::string_view child_span_id) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // Optional: completes the response on the thread that writes it (the connection's I/O
  // thread), just before it is sent; it may set the body and headers. For deferred answers
  // whose body is costly to build, so that the thread calling the Reply (e.g. the queue
  // broker's writer) only hands the data over. See PrepareResponse.
  std::function<void(Response&)> prepare;

  // `value` serialized compactly with Content-Type: application/json.
  static Response Json(int status, const nlohmann::json& value);
  // `body` with the given Content-Type (default text/plain; charset=utf-8).
  static Response Text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  // An empty response (e.g. 204).
  static Response Empty(int status);
};

// Runs and clears `response.prepare`, if set; an exception it throws is logged and the
// response becomes a 500 problem. The server calls it before writing a response;
// Router::Dispatch before returning one.
void PrepareResponse(Response& response);

// Optional per-route settings.
struct RouteOptions {
  // Largest accepted body in bytes; 0 = the server default (1 MiB unless configured).
  size_t max_body_bytes = 0;
  // The handler waits on the disk or a lock, or computes for long (a group commit waited for
  // synchronously, an fsync, training a model): the server runs it on its bounded pool of
  // blocking threads instead of an I/O thread, so the I/O threads keep answering (/livez
  // among them) meanwhile. When that pool's queue is full the request is answered 503
  // (SERVER_BUSY, Retry-After). Router::Dispatch runs such a route inline, like any other.
  bool blocking = false;
  // The scope a caller needs ("ids:read", "queue:write", "admin"; auth/principal.hpp), checked
  // by the router before the handler runs (see Router::SetAuthenticator). Empty: public.
  std::string scope;
  // As `blocking`, only for requests whose body is larger than this (0: none): for a route
  // that is quick on typical input and long on the largest it accepts.
  size_t blocking_above_body_bytes = 0;
  // OpenAPI 3.1 Operation Object for this route (summary, parameters, requestBody,
  // responses...). Stored next to the handler so the document cannot drift from the routes.
  nlohmann::json openapi = nlohmann::json::object();
};

using Handler = std::function<StatusOr<Response>(const Request&)>;

// Deferred answers, for handlers that wait on something other than the CPU (a group commit,
// an outbound call) and must not hold an I/O thread meanwhile. An AsyncHandler returns at
// once and later calls its Reply exactly once, from any thread; the server then writes the
// answer on the connection's own thread. The Request stays valid and unchanged until the
// Reply is called (the connection reads nothing more meanwhile). A Reply that is never
// called leaves the connection waiting until the server stops.
using Reply = std::function<void(StatusOr<Response>)>;
using AsyncHandler = std::function<void(const Request&, Reply)>;

// Verifies a request's credential (`Authorization: Bearer <token>`) and says who it acts as.
// Unauthenticated when it is missing or not accepted; the status message is the short reason
// the client is told, and never holds the token. Called from any I/O thread.
using Authenticator = std::function<StatusOr<auth::Principal>(const Request&)>;

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers `handler` for `method` on `pattern`. Registering the same method and pattern
  // twice replaces the first. An `operationId` (in `options.openapi`) that another route
  // already declares is a bug in the route table: it is logged and the process aborts.
  void Handle(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  void Get(std::string pattern, Handler h, RouteOptions o = {});
  void Post(std::string pattern, Handler h, RouteOptions o = {});
  void Put(std::string pattern, Handler h, RouteOptions o = {});
  void Patch(std::string pattern, Handler h, RouteOptions o = {});
  void Delete(std::string pattern, Handler h, RouteOptions o = {});
  // Registers a deferred handler (see AsyncHandler); otherwise as Handle.
  void HandleAsync(std::string method, std::string pattern, AsyncHandler handler,
                   RouteOptions options = {});

  // Turns authentication on; call before serving. A route with a scope then answers
  // 401 (WWW-Authenticate: Bearer realm="evo", error="invalid_token"; problem reason
  // UNAUTHENTICATED) when `authenticate` refuses the request or the token came in the query
  // string (`access_token`), and 403 (error="insufficient_scope", reason INSUFFICIENT_SCOPE,
  // naming the scope) when the principal lacks the scope. Without an authenticator
  // (authentication off) such requests act as admin. Public routes never ask.
  void SetAuthenticator(Authenticator authenticate);

  // What the server needs to know before reading a request's body.
  struct Match {
    bool found = false;  // some route matches the path (with any method)
    bool method_allowed = false;
    std::string route;                     // the pattern, for metrics and logs ("/v1/ids/{id}")
    size_t max_body_bytes = 0;             // 0 = server default
    bool blocking = false;                 // RouteOptions::blocking of the matched route
    size_t blocking_above_body_bytes = 0;  // and its RouteOptions::blocking_above_body_bytes
  };
  Match Find(std::string_view method, std::string_view path) const;

  // Routes `request` and returns the answer; never throws. Unknown path -> 404; known path,
  // other method (including unknown ones like BREW) -> 405 with Allow (sorted; HEAD when GET
  // exists; OPTIONS); HEAD runs GET and drops the body, keeping its Content-Length; OPTIONS
  // -> 204 + Allow. Paths with "." or ".." segments (also %2e-encoded) or backslashes never
  // match (404); "/v1/ids/" does not match "/v1/ids". A `{param}` that decodes to bad
  // percent-encoding, '/', control characters or invalid UTF-8 -> 400. A handler's
  // exception -> 500 "internal error", logged. Adds `Content-Type:
  // application/octet-stream` when the handler returned a body without one.
  // An async route is run here and waited for on the calling thread.
  Response Dispatch(Request& request) const;

  // As Dispatch, without waiting: a synchronous route's answer is returned; an async route
  // returns nullopt and hands its finished answer (the same post-processing as Dispatch) to
  // `finish`, exactly once, from whichever thread its Reply is called on. `request` must
  // stay alive and unchanged until then.
  std::optional<Response> DispatchDeferred(Request& request,
                                           std::function<void(Response)> finish) const;

  // The OpenAPI 3.1 document describing every registered route; its server is "/" (relative:
  // the instance the document was fetched from). Besides what each route declares, every
  // operation gets the answers the server and router give before its handler runs, unless it
  // declares the code itself: a 400 when it has path or query parameters, "4XX"
  // (#/components/responses/RequestRefused: 400, 413, 414, 431) and a problem+json "default".
  nlohmann::json OpenApi(std::string_view title, std::string_view version) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A 400 about one field of a request body: InvalidArgument with reason INVALID_FIELD and the
// field's JSON pointer ("#/arms/0/name"), which the problem answer lists under errors[].
Status InvalidField(std::string_view pointer, std::string_view message);

// Checks a string a request names something by: a name, id, key, URL, path or header value.
// One holding U+0000 or another control character (C0 or DEL) is a 400: InvalidArgument with
// reason INVALID_CHARACTER and the field's JSON pointer. JSON strings may hold U+0000 (RFC
// 8259), and JsonBody() lets them through, because inside opaque payloads and free text (a
// queue message, a webhook payload, a mail to classify) it is data; handlers call this on the
// strings that are identifiers.
Status CheckIdentifier(std::string_view value, std::string_view pointer);

// True when `name` may be sent as an HTTP header field name: a non-empty RFC 9110 token.
bool IsHeaderName(std::string_view name);

// The `pageSize` query parameter of a list route (DESIGN.md): absent or empty -> 50; above
// 1000 -> 1000; not a positive integer -> 400 (INVALID_FIELD, "#/pageSize").
StatusOr<size_t> PageSizeParam(const Request& request);
// OpenAPI Parameter Objects for pageSize and pageToken.
nlohmann::json PageParametersSpec();

// OpenAPI Request Body / Response Objects with an application/json schema.
nlohmann::json JsonRequestSpec(nlohmann::json schema);
nlohmann::json JsonResponseSpec(std::string_view description,
                                nlohmann::json schema = nlohmann::json::object());

// An OpenAPI Response Object for a problem+json answer ({"description", "content": Problem}),
// for the `responses` of RouteOptions::openapi.
nlohmann::json ProblemResponseSpec(std::string_view description);

// The problem+json answer for a non-OK status (see problem.hpp for the mapping).
Response ProblemResponse(const Status& status, std::string_view instance = {});

// Status payload with extra headers for the problem answer: "Name: value" lines separated
// by '\n' (e.g. "Accept-Post: application/json" on a 415, a WWW-Authenticate challenge with
// error="invalid_token" on a 401). Lines with an invalid name or value are dropped. Prefer
// AddProblemHeader to writing it by hand.
inline constexpr std::string_view kPayloadHttpHeaders = "http-headers";
// Appends `name: value` to the kPayloadHttpHeaders payload of `status` (no effect on OK).
void AddProblemHeader(Status& status, std::string_view name, std::string_view value);

}  // namespace evo::http
