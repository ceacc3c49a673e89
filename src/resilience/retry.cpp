// Outcome classification, Retry-After parsing, the retry policy and the blocking Retry loop.
#include <algorithm>
#include <cmath>
#include <string>

#include "resilience/resilience.hpp"

namespace evo::resilience {
namespace {

using std::chrono::milliseconds;

// Delta-seconds beyond this saturate (RFC 9110 §1.2.1 asks recipients to cope with values
// they cannot represent; the policy's clamp makes the exact figure moot anyway).
constexpr int64_t kMaxRetryAfterSeconds = 2'147'483'647;

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Non-empty ASCII digits, saturating at kMaxRetryAfterSeconds; nullopt otherwise.
std::optional<int64_t> ParseSeconds(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  int64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = std::min(kMaxRetryAfterSeconds, value * 10 + (c - '0'));
  }
  return value;
}

// The value of a run of ASCII digits (the caller fixes the length); nullopt on anything else.
std::optional<int> Digits(std::string_view s) {
  int value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  return value;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "Sun, 06 Nov 1994 08:49:37 GMT" -> seconds since the Unix epoch.
std::optional<int64_t> ParseImfFixdate(std::string_view s) {
  static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  if (std::find(std::begin(kDays), std::end(kDays), s.substr(0, 3)) == std::end(kDays)) {
    return std::nullopt;
  }
  const auto* month_it = std::find(std::begin(kMonths), std::end(kMonths), s.substr(8, 3));
  if (month_it == std::end(kMonths)) {
    return std::nullopt;
  }
  const int month = static_cast<int>(month_it - std::begin(kMonths)) + 1;
  const auto day = Digits(s.substr(5, 2));
  const auto year = Digits(s.substr(12, 4));
  const auto hour = Digits(s.substr(17, 2));
  const auto minute = Digits(s.substr(20, 2));
  const auto second = Digits(s.substr(23, 2));
  if (!day || !year || !hour || !minute || !second || *day < 1 ||
      *day > DaysInMonth(*year, month) || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;  // 60 is a leap second, which IMF-fixdate allows
  }
  return DaysFromCivil(*year, month, *day) * 86400 + int64_t{*hour} * 3600 + int64_t{*minute} * 60 +
         *second;
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "success";
    case Outcome::kTransient:
      return "transient";
    case Outcome::kPermanent:
      return "permanent";
    case Outcome::kGone:
      return "gone";
  }
  return "unknown";
}

Outcome ClassifyHttpStatus(int status) {
  if (status >= 200 && status <= 299) {
    return Outcome::kSuccess;
  }
  if (status == 410) {
    return Outcome::kGone;
  }
  if (status >= 400 && status <= 499) {
    const bool retryable = status == 408 || status == 409 || status == 425 || status == 429;
    return retryable ? Outcome::kTransient : Outcome::kPermanent;
  }
  // 3xx, 5xx, and no valid final status at all.
  return Outcome::kTransient;
}

Outcome ClassifyStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return Outcome::kSuccess;
    case StatusCode::kCancelled:
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kPermissionDenied:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
    case StatusCode::kUnimplemented:
    case StatusCode::kDataLoss:
    case StatusCode::kUnauthenticated:
      return Outcome::kPermanent;
    default:
      return Outcome::kTransient;
  }
}

std::optional<milliseconds> ParseRetryAfter(std::string_view value, Clock::WallTime now) {
  value = TrimOws(value);
  if (!value.empty() && value.front() >= '0' && value.front() <= '9') {
    const auto seconds = ParseSeconds(value);
    if (!seconds) {
      return std::nullopt;
    }
    return std::chrono::seconds(*seconds);
  }
  const auto at = ParseImfFixdate(value);
  if (!at) {
    return std::nullopt;
  }
  const auto wait = Clock::WallTime(std::chrono::seconds(*at)) - now;
  return std::max(milliseconds(0), std::chrono::ceil<milliseconds>(wait));
}

std::optional<milliseconds> RetryAfterFromStatus(const Status& status) {
  const auto payload = status.GetPayload(kPayloadRetryAfter);
  if (!payload) {
    return std::nullopt;
  }
  const auto seconds = ParseSeconds(*payload);
  if (!seconds) {
    return std::nullopt;
  }
  return std::chrono::seconds(*seconds);
}

Status Validate(const RetryOptions& o) {
  if (o.max_attempts < 1 || o.max_attempts > 10000) {
    return InvalidArgumentError("max_attempts must be between 1 and 10000");
  }
  if (o.schedule.empty()) {
    if (o.initial_backoff < milliseconds(1)) {
      return InvalidArgumentError("initial_backoff must be at least 1 ms");
    }
    if (o.max_backoff < o.initial_backoff) {
      return InvalidArgumentError("max_backoff must be at least initial_backoff");
    }
    if (!(o.multiplier >= 1.0 && o.multiplier <= 100.0)) {
      return InvalidArgumentError("multiplier must be between 1 and 100");
    }
  }
  if (o.schedule.size() > 10000) {
    return InvalidArgumentError("schedule must have at most 10000 entries");
  }
  for (milliseconds d : o.schedule) {
    if (d < milliseconds(0)) {
      return InvalidArgumentError("schedule entries must not be negative");
    }
  }
  if (!(o.schedule_jitter >= 0.0 && o.schedule_jitter <= 1.0)) {
    return InvalidArgumentError("schedule_jitter must be between 0 and 1");
  }
  if (o.max_elapsed < milliseconds(0)) {
    return InvalidArgumentError("max_elapsed must not be negative (0 means no limit)");
  }
  if (o.retry_after_min < milliseconds(0)) {
    return InvalidArgumentError("retry_after_min must not be negative");
  }
  if (o.retry_after_max < o.retry_after_min) {
    return InvalidArgumentError("retry_after_max must be at least retry_after_min");
  }
  return OkStatus();
}

RetryOptions WebhookRetryOptions() {
  using std::chrono::hours;
  using std::chrono::minutes;
  using std::chrono::seconds;
  RetryOptions o;
  o.schedule = {seconds(5), minutes(5), minutes(30), hours(2), hours(5), hours(10), hours(10)};
  o.max_attempts = static_cast<int>(o.schedule.size()) + 1;
  o.schedule_jitter = 0.2;
  o.retry_after_min = milliseconds(0);
  o.retry_after_max = hours(10);
  return o;
}

StatusOr<RetryPolicy> RetryPolicy::Create(RetryOptions options) {
  EVO_RETURN_IF_ERROR(Validate(options));
  return RetryPolicy(std::move(options));
}

std::optional<RetryPolicy::DelayRange> RetryPolicy::Range(int attempts_made) const {
  attempts_made = std::max(attempts_made, 1);
  if (attempts_made >= options_.max_attempts) {
    return std::nullopt;
  }
  if (!options_.schedule.empty()) {
    if (static_cast<size_t>(attempts_made) > options_.schedule.size()) {
      return std::nullopt;
    }
    const auto base = static_cast<double>(options_.schedule[attempts_made - 1].count());
    const double j = options_.schedule_jitter;
    // Inward rounding keeps every drawn value inside base * (1 ± j); base itself is whole, so
    // the range is never empty. The slack absorbs products like 5000 * 0.8 = 4000.0000000000005.
    constexpr double kSlack = 1e-6;
    return DelayRange{milliseconds(static_cast<int64_t>(std::ceil(base * (1.0 - j) - kSlack))),
                      milliseconds(static_cast<int64_t>(std::floor(base * (1.0 + j) + kSlack)))};
  }
  // initial * multiplier^(n-1) in floating point: it overflows to inf rather than wrapping,
  // and the comparison with the cap then picks the cap.
  const double ceiling = static_cast<double>(options_.initial_backoff.count()) *
                         std::pow(options_.multiplier, attempts_made - 1);
  const double cap = static_cast<double>(options_.max_backoff.count());
  const auto max = ceiling >= cap ? options_.max_backoff
                                  : milliseconds(static_cast<int64_t>(std::floor(ceiling)));
  return DelayRange{milliseconds(0), max};
}

std::optional<milliseconds> RetryPolicy::NextDelay(int attempts_made, milliseconds elapsed,
                                                   std::optional<milliseconds> retry_after,
                                                   uint64_t random) const {
  const auto range = Range(attempts_made);
  if (!range) {
    return std::nullopt;
  }
  const double u = static_cast<double>(random >> 11) * 0x1.0p-53;  // [0, 1)
  const auto span = static_cast<double>((range->max - range->min).count()) + 1.0;
  milliseconds delay =
      std::min(range->max, range->min + milliseconds(static_cast<int64_t>(std::floor(u * span))));
  if (retry_after) {
    delay = std::max(delay,
                     std::clamp(*retry_after, options_.retry_after_min, options_.retry_after_max));
  }
  if (options_.max_elapsed > milliseconds(0) && elapsed + delay > options_.max_elapsed) {
    return std::nullopt;
  }
  return delay;
}

Status Retry(const RetryPolicy& policy, const Clock& clock, Random& random,
             const Deadline& deadline, const std::function<Status(int attempt)>& call) {
  if (deadline.Expired()) {
    return DeadlineExceededError("deadline expired before the first attempt");
  }
  const Clock::SteadyTime start = clock.Monotonic();
  for (int attempt = 1;; ++attempt) {
    Status status = call(attempt);
    if (!IsRetryable(ClassifyStatus(status))) {
      return status;
    }
    const auto elapsed = std::chrono::duration_cast<milliseconds>(clock.Monotonic() - start);
    const auto delay = policy.NextDelay(attempt, elapsed, RetryAfterFromStatus(status), random);
    if (!delay || (!deadline.infinite() && deadline.Remaining() <= *delay)) {
      return status;
    }
    clock.SleepFor(*delay);
  }
}

}  // namespace evo::resilience
