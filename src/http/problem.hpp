// The one Status -> HTTP table, and the RFC 9457 problem+json answer built from a Status.
//
// Private to the http module: other modules return a Status and let the Router answer.
//
// Mapping (gRPC-gateway conventions; a kPayloadHttpStatus payload of 400..599 overrides it,
// which is how 413, 415, 422 and 431 are expressed):
//
//   INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE   400
//   UNAUTHENTICATED     401 (+ WWW-Authenticate: Bearer realm="evo" unless given)
//   PERMISSION_DENIED   403        NOT_FOUND           404
//   ALREADY_EXISTS      409        ABORTED             409
//   RESOURCE_EXHAUSTED  429        CANCELLED           499 (client closed request)
//   UNIMPLEMENTED       501        UNAVAILABLE         503
//   DEADLINE_EXCEEDED   504        UNKNOWN, INTERNAL, DATA_LOSS and anything else  500
//
// Body: {"type", "title", "status", "detail", "code"} plus "reason" (kPayloadReason),
// "errors": [{"pointer", "detail"}] (kPayloadPointer) and "instance" when given.
// `type` is "https://evo.dev/problems/<code in lower case, '_' -> '-'>", e.g.
// https://evo.dev/problems/invalid-argument; `title` is the HTTP reason phrase.
// Headers: Content-Type application/problem+json; Retry-After from kPayloadRetryAfter
// (whole seconds); anything listed in kPayloadHttpHeaders (see router.hpp).
#pragma once

#include <string>
#include <string_view>

#include "core/status.hpp"

namespace evo::http {

// The HTTP status for a non-OK `status` (200 for OK).
int HttpStatusFor(const Status& status);

// The standard reason phrase of `http_status` ("Not Found"); "Unknown" when there is none.
std::string_view ReasonPhrase(int http_status);

// The problem `type` URI for `code`.
std::string ProblemType(StatusCode code);

}  // namespace evo::http
