// Status and StatusOr<T>: how every evo function reports a failure the caller may handle.
//
// The names and codes follow Abseil's absl::Status (which follows the canonical gRPC codes),
// because Debian's Abseil cannot be used here and because the HTTP and gRPC adapters map
// these codes one-to-one (http/problem.hpp holds the HTTP table).
//
// Do not switch exhaustively over codes: new ones may be handled later. Test the specific
// code you expect (`EXPECT_EQ(s.code(), StatusCode::kNotFound)`).
//
// A Status may carry payloads: small string values under well-known keys that adapters turn
// into response details (see kPayload* below). They are copied with the Status.
//
// Thread safety: Status and StatusOr are values; distinct objects may be used concurrently.
#pragma once

#include <cassert>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace evo {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// The canonical upper-case name of `code` ("INVALID_ARGUMENT"), used as the problem+json
// `code` field and in logs.
std::string_view StatusCodeName(StatusCode code);

// Well-known payload keys (values are plain strings).
inline constexpr std::string_view kPayloadRetryAfter = "retry-after";  // whole seconds
inline constexpr std::string_view kPayloadReason = "reason";  // machine reason, e.g. MALFORMED_JSON
inline constexpr std::string_view kPayloadPointer = "pointer";  // JSON pointer of the bad field
inline constexpr std::string_view kPayloadHttpStatus = "http-status";  // overrides the mapping

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;
  // A status with `code` and a human-readable `message`. A kOk code ignores the message.
  Status(StatusCode code, std::string_view message);

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The message; empty for OK.
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }

  // Attaches or replaces a payload. No effect on an OK status.
  void SetPayload(std::string_view key, std::string value);
  // Returns the payload under `key`, if any.
  std::optional<std::string> GetPayload(std::string_view key) const;
  // Chaining helper: `return InvalidArgumentError("..").With(kPayloadPointer, "#/count");`
  Status With(std::string_view key, std::string value) &&;

  // "INVALID_ARGUMENT: count must be 1..10000"; "OK" for OK.
  std::string ToString() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
    std::map<std::string, std::string, std::less<>> payloads;
  };
  // Null for OK so that returning OK costs one pointer. Copy-on-write is not needed: copies
  // of error statuses are rare and cheap enough.
  std::shared_ptr<Rep> rep_;
};

inline Status OkStatus() { return Status(); }
std::ostream& operator<<(std::ostream& os, const Status& status);

// Constructors for each error code, as in Abseil.
Status CancelledError(std::string_view message);
Status UnknownError(std::string_view message);
Status InvalidArgumentError(std::string_view message);
Status DeadlineExceededError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status PermissionDeniedError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status AbortedError(std::string_view message);
Status OutOfRangeError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status InternalError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DataLossError(std::string_view message);
Status UnauthenticatedError(std::string_view message);

// Either a value of type T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // REQUIRES: !status.ok(). An OK status here is a bug and becomes kInternal.
  StatusOr(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) {
      data_ = InternalError("StatusOr constructed from an OK status without a value");
    }
  }
  StatusOr(const T& value) : data_(value) {}        // NOLINT(google-explicit-constructor)
  StatusOr(T&& value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, StatusOr<T>>>>
  StatusOr(U&& value) : data_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(data_); }
  // OK when a value is held.
  Status status() const { return ok() ? OkStatus() : std::get<Status>(data_); }

  // REQUIRES: ok().
  const T& value() const& { return std::get<T>(data_); }
  T& value() & { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // The value, or `fallback` when an error is held.
  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<Status, T> data_;
};

namespace internal {
inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

}  // namespace evo

#define EVO_STATUS_CONCAT_INNER_(a, b) a##b
#define EVO_STATUS_CONCAT_(a, b) EVO_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (a Status or StatusOr) is not OK.
#define EVO_RETURN_IF_ERROR(expr)                                                \
  do {                                                                           \
    if (auto evo_status_ = ::evo::internal::ToStatus(expr); !evo_status_.ok()) { \
      return evo_status_;                                                        \
    }                                                                            \
  } while (false)

// `EVO_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns `x` from a StatusOr's value or
// returns its error from the enclosing function.
#define EVO_ASSIGN_OR_RETURN(lhs, expr) \
  EVO_ASSIGN_OR_RETURN_IMPL_(EVO_STATUS_CONCAT_(evo_statusor_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): `lhs` is a declaration and cannot be parenthesized.
#define EVO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) {                                 \
    return tmp.status();                           \
  }                                                \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
