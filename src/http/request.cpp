// Request helpers handlers call: Query and JsonBody, the strict readers of client input.
#include <cmath>
#include <string>
#include <vector>

#include "core/utf8.hpp"
#include "http/router.hpp"
#include "http/text.hpp"

namespace evo::http {
namespace {

using nlohmann::json;

constexpr size_t kMaxJsonDepth = 64;

Status MalformedJson(std::string_view message) {
  return InvalidArgumentError(message).With(kPayloadReason, "MALFORMED_JSON");
}

StatusOr<std::string> DecodeQueryComponent(std::string_view raw) {
  auto decoded = internal::PercentDecode(raw, true);
  if (!decoded) {
    return InvalidArgumentError("query string has an invalid percent-encoding")
        .With(kPayloadReason, "INVALID_QUERY");
  }
  if (!utf8::IsValid(*decoded)) {
    return InvalidArgumentError("query string is not valid UTF-8")
        .With(kPayloadReason, "INVALID_QUERY");
  }
  if (internal::HasControlChars(*decoded)) {
    return InvalidArgumentError("query string holds control characters")
        .With(kPayloadReason, "INVALID_QUERY");
  }
  return std::move(*decoded);
}

// application/json, any case, optional parameters; a charset parameter must say utf-8.
bool IsJsonContentType(std::string_view value) {
  const size_t semicolon = value.find(';');
  if (!internal::IEquals(internal::TrimOws(value.substr(0, semicolon)), "application/json")) {
    return false;
  }
  std::string_view rest =
      semicolon == std::string_view::npos ? std::string_view() : value.substr(semicolon + 1);
  while (!rest.empty()) {
    const size_t next = rest.find(';');
    const std::string_view parameter = internal::TrimOws(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (parameter.empty()) {
      continue;
    }
    const size_t eq = parameter.find('=');
    if (eq == std::string_view::npos) {
      return false;
    }
    const std::string_view name = internal::TrimOws(parameter.substr(0, eq));
    std::string_view arg = internal::TrimOws(parameter.substr(eq + 1));
    if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') {
      arg = arg.substr(1, arg.size() - 2);
    }
    if (internal::IEquals(name, "charset") && !internal::IEquals(arg, "utf-8")) {
      return false;
    }
  }
  return true;
}

// Builds the DOM like nlohmann's own SAX DOM parser, but refuses what the default parser
// accepts silently: duplicate object keys (it keeps the last), nesting deeper than
// kMaxJsonDepth (nlohmann's parser is iterative, so stopping here also bounds memory).
// Strings and keys holding U+0000 are valid JSON (RFC 8259) and kept: in payloads they are
// data; identifiers are checked by their handlers (CheckIdentifier). Returning false from any
// callback stops the parse at once.
class StrictJsonSax {
 public:
  bool null() { return Put(nullptr); }
  bool boolean(bool value) { return Put(value); }
  bool number_integer(json::number_integer_t value) { return Put(value); }
  bool number_unsigned(json::number_unsigned_t value) { return Put(value); }
  bool number_float(json::number_float_t value, const json::string_t& /*text*/) {
    if (!std::isfinite(value)) {  // the parser already refuses overflow; keep it explicit
      return Fail(MalformedJson("number out of range"));
    }
    return Put(value);
  }
  bool string(json::string_t& value) { return Put(std::move(value)); }
  bool binary(json::binary_t& /*value*/) { return Fail(MalformedJson("unexpected binary value")); }
  bool start_object(std::size_t /*size*/) { return Open(json::object()); }
  bool key(json::string_t& key) {
    Frame& top = stack_.back();
    top.token = key;
    if (top.container->contains(key)) {
      return Fail(MalformedJson("duplicate object key").With(kPayloadPointer, Pointer()));
    }
    slot_ = &(*top.container)[key];
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*size*/) { return Open(json::array()); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*token*/,
                   const nlohmann::detail::exception& error) {
    // nlohmann's message names the offending token, which may be client bytes; keep only
    // the position, which is enough to find the mistake.
    const bool overflow = error.id == 406;
    return Fail(MalformedJson(overflow ? "number out of range at byte " + std::to_string(position)
                                       : "request body is not valid JSON (syntax error at byte " +
                                             std::to_string(position) + ")"));
  }

  json& root() { return root_; }
  const Status& error() const { return error_; }

 private:
  struct Frame {
    json* container;
    std::string token;  // objects: current key; arrays: index of the open child
  };

  bool Fail(Status status) {
    if (error_.ok()) {
      error_ = std::move(status);
    }
    return false;
  }

  // Stores `value` at the current position and returns where it now lives. Containers up
  // the stack never move while a child is open, so the pointers in stack_ stay valid.
  json* Place(json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Frame& top = stack_.back();
    if (top.container->is_array()) {
      top.token = std::to_string(top.container->size());
      top.container->push_back(std::move(value));
      return &top.container->back();
    }
    *slot_ = std::move(value);
    return slot_;
  }

  bool Put(json value) {
    Place(std::move(value));
    return true;
  }

  bool Open(json container) {
    if (stack_.size() >= kMaxJsonDepth) {
      return Fail(MalformedJson("JSON nesting is deeper than " + std::to_string(kMaxJsonDepth)));
    }
    json* placed = Place(std::move(container));
    stack_.push_back({placed, {}});
    return true;
  }

  // The JSON pointer (URI fragment form, "#/a/0/b") of the value being read.
  std::string Pointer() const {
    std::string pointer = "#";
    for (size_t i = 0; i < stack_.size(); ++i) {
      const Frame& frame = stack_[i];
      const bool top = i + 1 == stack_.size();
      const std::string token = top && frame.container->is_array()
                                    ? std::to_string(frame.container->size())
                                    : frame.token;
      pointer.push_back('/');
      for (const char c : token) {
        if (c == '~') {
          pointer += "~0";
        } else if (c == '/') {
          pointer += "~1";
        } else {
          pointer.push_back(c);
        }
      }
    }
    return pointer;
  }

  json root_;
  json* slot_ = nullptr;  // the object member the next value goes into
  std::vector<Frame> stack_;
  Status error_;
};

}  // namespace

StatusOr<std::optional<std::string>> Request::Query(std::string_view name) const {
  std::optional<std::string> found;
  std::string_view rest = query;
  // Every pair is decoded, not only `name`'s: a malformed query is a 400 whichever
  // parameter the handler happens to look at first.
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const size_t eq = pair.find('=');
    EVO_ASSIGN_OR_RETURN(std::string key, DecodeQueryComponent(pair.substr(0, eq)));
    EVO_ASSIGN_OR_RETURN(std::string value,
                         DecodeQueryComponent(eq == std::string_view::npos ? std::string_view()
                                                                           : pair.substr(eq + 1)));
    if (key != name) {
      continue;
    }
    if (found) {
      return InvalidArgumentError("query parameter '" + std::string(name) + "' is repeated")
          .With(kPayloadReason, "INVALID_QUERY");
    }
    found = std::move(value);
  }
  return found;
}

StatusOr<nlohmann::json> Request::JsonBody() const {
  const auto content_type = headers.Get("Content-Type");
  if (!content_type || !IsJsonContentType(*content_type)) {
    Status status = InvalidArgumentError("Content-Type must be application/json")
                        .With(kPayloadHttpStatus, "415")
                        .With(kPayloadReason, "UNSUPPORTED_MEDIA_TYPE");
    AddProblemHeader(status, method == "PATCH" ? "Accept-Patch" : "Accept-Post",
                     "application/json");
    return status;
  }
  if (body.empty()) {
    return InvalidArgumentError("a JSON request body is required")
        .With(kPayloadReason, "BODY_REQUIRED");
  }
  if (!utf8::IsValid(body)) {
    return MalformedJson("request body is not valid UTF-8");
  }
  StrictJsonSax sax;
  if (!json::sax_parse(body.begin(), body.end(), &sax, json::input_format_t::json,
                       /*strict=*/true, /*ignore_comments=*/false)) {
    return sax.error().ok() ? MalformedJson("request body is not valid JSON") : sax.error();
  }
  return std::move(sax.root());
}

std::string Request::OutboundTraceparent(std::string_view child_span_id) const {
  std::string value = "00-";
  value += trace_id;
  value += '-';
  value += child_span_id.empty() ? std::string_view(span_id) : child_span_id;
  value += "-01";
  return value;
}

}  // namespace evo::http
