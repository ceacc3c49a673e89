#include "core/status.hpp"

#include <array>

namespace evo {
namespace {
constexpr std::array<std::string_view, 17> kNames = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
}  // namespace

std::string_view StatusCodeName(StatusCode code) {
  const auto i = static_cast<size_t>(code);
  return i < kNames.size() ? kNames[i] : "UNKNOWN";
}

Status::Status(StatusCode code, std::string_view message) {
  if (code != StatusCode::kOk) {
    rep_ = std::make_shared<Rep>(Rep{code, std::string(message), {}});
  }
}

void Status::SetPayload(std::string_view key, std::string value) {
  if (!rep_) {
    return;
  }
  if (rep_.use_count() > 1) {  // copies share Rep; detach before writing
    rep_ = std::make_shared<Rep>(*rep_);
  }
  rep_->payloads.insert_or_assign(std::string(key), std::move(value));
}

std::optional<std::string> Status::GetPayload(std::string_view key) const {
  if (!rep_) {
    return std::nullopt;
  }
  auto it = rep_->payloads.find(key);
  if (it == rep_->payloads.end()) {
    return std::nullopt;
  }
  return it->second;
}

Status Status::With(std::string_view key, std::string value) && {
  SetPayload(key, std::move(value));
  return std::move(*this);
}

std::string Status::ToString() const {
  if (ok()) {
    return "OK";
  }
  std::string out(StatusCodeName(code()));
  out += ": ";
  out += message();
  return out;
}

std::ostream& operator<<(std::ostream& os, const Status& status) { return os << status.ToString(); }

#define EVO_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string_view message) { return Status(StatusCode::Code, message); }
EVO_DEFINE_ERROR_(CancelledError, kCancelled)
EVO_DEFINE_ERROR_(UnknownError, kUnknown)
EVO_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
EVO_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
EVO_DEFINE_ERROR_(NotFoundError, kNotFound)
EVO_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
EVO_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
EVO_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
EVO_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
EVO_DEFINE_ERROR_(AbortedError, kAborted)
EVO_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)
EVO_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
EVO_DEFINE_ERROR_(InternalError, kInternal)
EVO_DEFINE_ERROR_(UnavailableError, kUnavailable)
EVO_DEFINE_ERROR_(DataLossError, kDataLoss)
EVO_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)
#undef EVO_DEFINE_ERROR_

}  // namespace evo
