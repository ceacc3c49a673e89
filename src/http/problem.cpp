#include "http/problem.hpp"

#include <charconv>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "http/router.hpp"
#include "http/text.hpp"

namespace evo::http {
namespace {

constexpr std::string_view kProblemContentType = "application/problem+json";

constexpr std::pair<int, std::string_view> kReasonPhrases[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

std::optional<int> ParseStatusOverride(const Status& status) {
  const auto value = status.GetPayload(kPayloadHttpStatus);
  if (!value) {
    return std::nullopt;
  }
  int code = 0;
  const char* end = value->data() + value->size();
  const auto [ptr, ec] = std::from_chars(value->data(), end, code);
  if (ec != std::errc() || ptr != end || code < 400 || code > 599) {
    return std::nullopt;
  }
  return code;
}

bool IsDigits(std::string_view text) {
  if (text.empty() || text.size() > 10) {
    return false;
  }
  for (const char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace

int HttpStatusFor(const Status& status) {
  if (status.ok()) {
    return 200;
  }
  if (const auto code = ParseStatusOverride(status)) {
    return *code;
  }
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string_view ReasonPhrase(int http_status) {
  for (const auto& [code, phrase] : kReasonPhrases) {
    if (code == http_status) {
      return phrase;
    }
  }
  return "Unknown";
}

std::string ProblemType(StatusCode code) {
  std::string type = "https://evo.dev/problems/";
  for (const char c : StatusCodeName(code)) {
    type.push_back(c == '_' ? '-' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  return type;
}

void AddProblemHeader(Status& status, std::string_view name, std::string_view value) {
  std::string lines = status.GetPayload(kPayloadHttpHeaders).value_or("");
  if (!lines.empty()) {
    lines.push_back('\n');
  }
  lines.append(name);
  lines.append(": ");
  lines.append(value);
  status.SetPayload(kPayloadHttpHeaders, std::move(lines));
}

Response ProblemResponse(const Status& input, std::string_view instance) {
  const Status status =
      input.ok() ? InternalError("internal error: problem built from an OK status") : input;
  const int http_status = HttpStatusFor(status);

  nlohmann::json body = {
      {"type", ProblemType(status.code())},
      {"title", ReasonPhrase(http_status)},
      {"status", http_status},
      {"detail", status.message()},
      {"code", StatusCodeName(status.code())},
  };
  if (auto reason = status.GetPayload(kPayloadReason)) {
    body["reason"] = std::move(*reason);
  }
  if (auto pointer = status.GetPayload(kPayloadPointer)) {
    body["errors"] =
        nlohmann::json::array({{{"pointer", std::move(*pointer)}, {"detail", status.message()}}});
  }
  if (!instance.empty()) {
    body["instance"] = instance;
  }

  Response response;
  response.status = http_status;
  // The payload strings may hold anything a module put there: never let invalid UTF-8
  // turn an error answer into an exception.
  response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  response.headers.Set("Content-Type", std::string(kProblemContentType));

  if (const auto retry = status.GetPayload(kPayloadRetryAfter); retry && IsDigits(*retry)) {
    response.headers.Set("Retry-After", *retry);
  }
  if (const auto extra = status.GetPayload(kPayloadHttpHeaders)) {
    std::string_view rest = *extra;
    while (!rest.empty()) {
      const size_t eol = rest.find('\n');
      const std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = internal::TrimOws(line.substr(colon + 1));
      if (internal::IsToken(name) && internal::IsFieldValue(value)) {
        response.headers.Set(std::string(name), std::string(value));
      }
    }
  }
  if (http_status == 401 && !response.headers.Get("WWW-Authenticate")) {
    response.headers.Set("WWW-Authenticate", "Bearer realm=\"evo\"");
  }
  return response;
}

}  // namespace evo::http
