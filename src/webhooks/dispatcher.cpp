// The dispatcher owns all per-endpoint delivery state on one thread: events (leases that
// arrived, HTTP answers, endpoint changes, wake-ups) are posted to its inbox by the broker's
// and the HTTP client's threads, and its loop reacts to them. It does not write: broker calls
// are asynchronous, and attempt records, failures, failing streaks and disables are handed to
// the service's recorder thread (DispatcherHooks). The one wait on I/O is a read: a delivery
// whose body fell out of the 32 MiB cache reads its message row (a point read on a SQLite
// reader connection, which writers do not block).
//
// A deleted endpoint's lane (and its pending acks) is erased once its leases and requests
// have come back, so lanes track the live endpoints.
//
// Per endpoint: deliveries are leased only as fast as they can be sent (free concurrency
// slots, the circuit breaker closed or probing); each leased delivery waits for a token of
// the endpoint's bucket before it is sent, so the rate limit holds exactly; an answer
// settles the delivery (ack, nack on the retry schedule, or dead letter) and feeds the
// breaker. An endpoint that is slow, failing or rate limited only holds its own deliveries.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "webhooks/internal.hpp"

namespace evo::webhooks {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kIdlePoll{1000};  // look again at an endpoint whose queue was empty
constexpr milliseconds kLoopTick{20};    // token refill and breaker checks
constexpr size_t kMaxLeaseBatch = 100;
// How long a delivery waits for its message row to be stored (see Send).
constexpr milliseconds kMissingMessageWait{10 * 60 * 1000};
// Requests on the wire at once, over all endpoints, and deliveries leased beyond them: what
// the HTTP client can carry, so that nothing waits inside it long enough to time out and
// memory stays bounded however many endpoints there are.
constexpr int kMaxInFlight = 512;
constexpr int kMaxReserved = 8192;

// The message a delivery job is for: the job is the message id ("msg_…"); jobs enqueued by
// earlier versions are JSON objects holding it as "m" (and a copy of the message).
std::string JobMessageId(const std::string& payload) {
  if (payload.starts_with("msg_")) {
    return payload;
  }
  const json job = json::parse(payload, nullptr, false);
  if (!job.is_object() || !job.contains("m") || !job["m"].is_string()) {
    return "";
  }
  return job["m"].get<std::string>();
}

struct LeaseDone {
  std::string endpoint_id;
  StatusOr<std::vector<queue::Leased>> leases;
};
struct Answer {
  std::string endpoint_id;
  std::string message_id;
  queue::Leased delivery;
  int64_t sent_ms = 0;
  std::string url;
  Headers request_headers;
  outbound::Response response;
  std::shared_ptr<resilience::CircuitBreaker::Permit> permit;
};
struct Change {
  std::string endpoint_id;
  std::optional<Endpoint> endpoint;
};
struct WakeUp {
  std::string endpoint_id;
};
using Event = std::variant<LeaseDone, Answer, Change, WakeUp>;

struct Lane {
  Endpoint endpoint;
  std::unique_ptr<resilience::CircuitBreaker> breaker;
  int in_flight = 0;
  bool leasing = false;
  int64_t next_check_ms = 0;
  std::deque<queue::Leased> held;  // leased, waiting for a token
  int reserved = 0;                // what the outstanding lease asked for
  bool deleted = false;            // erased once nothing of it is outstanding
};

class DispatcherImpl final : public Dispatcher {
 public:
  DispatcherImpl(const Options& options, queue::Broker& broker, outbound::Client& client,
                 const Clock& clock, DispatcherHooks hooks, metrics::Registry* registry,
                 resilience::RetryPolicy retry, std::unique_ptr<resilience::RateLimiter> limiter)
      : options_(options),
        broker_(broker),
        client_(client),
        clock_(clock),
        hooks_(std::move(hooks)),
        registry_(registry),
        retry_(std::move(retry)),
        limiter_(std::move(limiter)),
        rng_(std::random_device{}()) {
    if (registry_ != nullptr) {
      auto& family = registry_->AddCounter("evo_webhooks_attempts_total",
                                           "Delivery attempts by outcome.", {"outcome"});
      succeeded_ = &family.Get({"succeeded"});
      retrying_ = &family.Get({"retrying"});
      failed_ = &family.Get({"failed"});
    }
  }
  ~DispatcherImpl() override { Stop(); }

  void Begin() {
    thread_ = std::thread([this] { Loop(); });
  }

  void Update(const std::string& endpoint_id, std::optional<Endpoint> endpoint) override {
    Post(Change{endpoint_id, std::move(endpoint)});
  }
  void Wake(const std::string& endpoint_id) override { Post(WakeUp{endpoint_id}); }
  size_t Lanes() const override { return lane_count_.load(); }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  void Post(Event event) {
    bool was_empty = false;
    {
      std::lock_guard lock(mu_);
      was_empty = inbox_.empty();
      inbox_.push_back(std::move(event));
    }
    if (was_empty) {  // otherwise the loop is already woken and takes the whole inbox
      cv_.notify_one();
    }
  }

  int64_t NowMs() const { return UnixMillis(clock_.Now()); }

  void Loop() {
    std::deque<Event> events;
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, kLoopTick, [&] { return stopping_ || !inbox_.empty(); });
        if (stopping_ && stop_deadline_ == Clock::SteadyTime()) {
          // Requests in flight get a little time to finish; after that their leases run out
          // and the deliveries come back on their own.
          stop_deadline_ = clock_.Monotonic() + std::chrono::seconds(3);
        }
        if (stopping_ && (outstanding_ == 0 || clock_.Monotonic() > stop_deadline_)) {
          break;
        }
        events.swap(inbox_);
      }
      for (Event& e : events) {
        // The boundary nothing read from a queue or a receiver crosses: logged, and the loop
        // goes on (a delivery that throws is dead-lettered in Send).
        try {
          std::visit([this](auto& ev) { Handle(ev); }, e);
        } catch (const std::exception& ex) {
          spdlog::error("webhooks: dispatcher event: {}", ex.what());
        } catch (...) {
          spdlog::error("webhooks: dispatcher event: unknown exception");
        }
      }
      events.clear();
      bool stopping = false;
      {
        std::lock_guard lock(mu_);
        stopping = stopping_;
      }
      if (stopping) {
        ReleaseHeld();
        FlushAcks();
        continue;  // wait for what is outstanding
      }
      const int64_t now = NowMs();
      // Round robin: each turn starts after the lane the previous turn served last, so that
      // with the global caps reached, every endpoint still gets its turn.
      auto start = lanes_.upper_bound(rr_cursor_);
      for (size_t n = 0; n < lanes_.size(); ++n, ++start) {
        if (start == lanes_.end()) {
          start = lanes_.begin();
        }
        try {
          if (Pump(start->first, start->second, now)) {
            rr_cursor_ = start->first;
          }
        } catch (const std::exception& ex) {
          spdlog::error("webhooks: dispatcher lane {}: {}", start->first, ex.what());
        } catch (...) {
          spdlog::error("webhooks: dispatcher lane {}: unknown exception", start->first);
        }
      }
      FlushAcks();
      EraseDeletedLanes();
    }
    FlushAcks();
  }

  void EraseDeletedLanes() {
    for (auto it = lanes_.begin(); it != lanes_.end();) {
      const Lane& lane = it->second;
      if (lane.deleted && lane.held.empty() && lane.in_flight == 0 && !lane.leasing) {
        pending_acks_.erase(it->first);
        it = lanes_.erase(it);
      } else {
        ++it;
      }
    }
    lane_count_.store(lanes_.size());
  }

  void FlushAcks() {
    for (auto& [id, lease_ids] : pending_acks_) {
      if (lease_ids.empty()) {
        continue;
      }
      const std::string endpoint_id = id;  // a structured binding cannot be captured (C++17)
      broker_.AckBatchAsync(EndpointQueue(endpoint_id), lease_ids,
                            [endpoint_id](const StatusOr<std::vector<Status>>& r) {
                              if (!r.ok()) {
                                spdlog::warn("webhooks: acking deliveries of {}: {}", endpoint_id,
                                             r.status().ToString());
                                return;
                              }
                              for (const Status& s : *r) {
                                if (!s.ok()) {
                                  spdlog::warn("webhooks: acking a delivery of {}: {}", endpoint_id,
                                               s.ToString());
                                }
                              }
                            });
      lease_ids.clear();
    }
  }

  // Deliveries leased but not sent go back without using up an attempt.
  void ReleaseHeld() {
    for (auto& [id, lane] : lanes_) {
      while (!lane.held.empty()) {
        Settle(id, lane.held.front().lease_id, false, milliseconds(0), "dispatcher stopping",
               /*count=*/false);
        lane.held.pop_front();
        --reserved_;
      }
    }
  }

  void Handle(Change& c) {
    if (!c.endpoint) {
      auto it = lanes_.find(c.endpoint_id);
      if (it != lanes_.end()) {
        it->second.endpoint.state = EndpointState::kDisabled;  // drains what it holds
        it->second.deleted = true;
      }
      return;
    }
    Lane& lane = lanes_[c.endpoint_id];
    lane.endpoint = std::move(*c.endpoint);
    lane.deleted = false;
    lane.next_check_ms = 0;
    if (!lane.breaker) {
      resilience::CircuitBreakerOptions o;
      o.name = c.endpoint_id;
      o.window = std::chrono::seconds(60);
      o.window_size = 50;
      o.min_calls = 10;
      o.failure_ratio = 0.5;
      o.open_duration = std::chrono::seconds(30);
      auto breaker = resilience::CircuitBreaker::Create(o, clock_, nullptr);
      if (breaker.ok()) {
        lane.breaker = std::move(*breaker);
      }
    }
  }

  void Handle(WakeUp& w) {
    auto it = lanes_.find(w.endpoint_id);
    if (it != lanes_.end()) {
      it->second.next_check_ms = 0;
    }
  }

  void Handle(LeaseDone& d) {
    --outstanding_;
    auto it = lanes_.find(d.endpoint_id);
    if (it == lanes_.end()) {
      return;
    }
    Lane& lane = it->second;
    lane.leasing = false;
    reserved_ -= lane.reserved;  // the lease's reservation becomes what it actually returned
    lane.reserved = 0;
    if (!d.leases.ok()) {
      if (d.leases.status().code() != StatusCode::kNotFound) {
        spdlog::warn("webhooks: leasing deliveries of {}: {}", d.endpoint_id,
                     d.leases.status().ToString());
      }
      lane.next_check_ms = NowMs() + kIdlePoll.count();
      return;
    }
    if (d.leases->empty()) {
      lane.next_check_ms = NowMs() + kIdlePoll.count();
      return;
    }
    for (queue::Leased& l : *d.leases) {
      lane.held.push_back(std::move(l));
      ++reserved_;
    }
    lane.next_check_ms = 0;
  }

  // Returns true when it sent or leased something for the lane.
  bool Pump(const std::string& id, Lane& lane, int64_t now) {
    const Endpoint& ep = lane.endpoint;
    bool served = false;
    if (ep.state != EndpointState::kActive) {
      // Held deliveries of a disabled or deleted endpoint go back to its queue.
      while (!lane.held.empty()) {
        Settle(id, lane.held.front().lease_id, false, milliseconds(0), "endpoint disabled", false);
        lane.held.pop_front();
        --reserved_;
      }
      return false;
    }
    const int cap = ep.ordered ? 1 : std::max(1, ep.max_concurrency);
    // Send what is held while slots and tokens allow.
    while (!lane.held.empty() && lane.in_flight < cap && in_flight_ < kMaxInFlight) {
      if (ep.rate_limit_per_second > 0) {
        resilience::RateLimit limit{ep.rate_limit_per_second,
                                    std::max(1.0, std::min(ep.rate_limit_per_second, 10.0))};
        if (!limiter_->TryAcquire(id, limit)) {
          break;
        }
      }
      std::shared_ptr<resilience::CircuitBreaker::Permit> permit;
      if (lane.breaker) {
        auto p = lane.breaker->Allow();
        if (!p.ok()) {
          break;  // open: wait, the deliveries stay leased
        }
        permit = std::make_shared<resilience::CircuitBreaker::Permit>(std::move(*p));
      }
      queue::Leased delivery = std::move(lane.held.front());
      lane.held.pop_front();
      --reserved_;
      Send(id, lane, std::move(delivery), std::move(permit));
      served = true;
    }
    // Lease more before what is held runs out: up to twice the concurrency cap in flight and
    // held, so that a lease brings a batch rather than a delivery or two.
    const int held = static_cast<int>(lane.held.size());
    if (held < cap && !lane.leasing && lane.in_flight + held < 2 * cap &&
        now >= lane.next_check_ms && in_flight_ + reserved_ < kMaxInFlight + kMaxReserved) {
      if (lane.breaker && lane.breaker->state() == resilience::BreakerState::kOpen) {
        return served;
      }
      size_t want = static_cast<size_t>(2 * cap - lane.in_flight - held);
      want =
          std::min(want, static_cast<size_t>(kMaxInFlight + kMaxReserved - in_flight_ - reserved_));
      if (ep.rate_limit_per_second > 0) {
        want = std::min(want, static_cast<size_t>(std::max(1.0, ep.rate_limit_per_second)));
      }
      want = std::min(want, kMaxLeaseBatch);
      lane.leasing = true;
      reserved_ += static_cast<int>(want);  // until the lease answers
      lane.reserved = static_cast<int>(want);
      served = true;
      ++outstanding_;
      // Long enough to wait for the tokens of the batch and the request itself.
      const auto visibility =
          options_.request_timeout + std::chrono::seconds(30) +
          (ep.rate_limit_per_second > 0
               ? milliseconds(static_cast<int64_t>(1000.0 * static_cast<double>(want) /
                                                   ep.rate_limit_per_second))
               : milliseconds(0));
      broker_.LeaseAsync(EndpointQueue(id), {.max = want, .visibility = visibility, .wait = {}},
                         [this, id](StatusOr<std::vector<queue::Leased>> r) {
                           Post(LeaseDone{id, std::move(r)});
                         });
    }
    return served;
  }

  // SendUnguarded, with a delivery that throws dead-lettered with what it threw.
  void Send(const std::string& id, Lane& lane, queue::Leased delivery,
            std::shared_ptr<resilience::CircuitBreaker::Permit> permit) {
    const std::string lease_id = delivery.lease_id;
    std::string thrown;
    try {
      SendUnguarded(id, lane, std::move(delivery), std::move(permit));
      return;
    } catch (const std::exception& e) {
      thrown = e.what();
    } catch (...) {
      thrown = "unknown exception";
    }
    spdlog::error("webhooks: delivery to {} dead-lettered: {}", id, thrown);
    broker_.FailAsync(EndpointQueue(id), lease_id, "delivery failed: " + thrown,
                      [](const StatusOr<bool>&) {});
  }

  void SendUnguarded(const std::string& id, Lane& lane, queue::Leased delivery,
                     std::shared_ptr<resilience::CircuitBreaker::Permit> permit) {
    std::string message_id = JobMessageId(delivery.payload);
    auto body = message_id.empty() ? StatusOr<std::shared_ptr<const std::string>>(
                                         InvalidArgumentError("malformed delivery job"))
                                   : hooks_.body(message_id);
    if (!body.ok()) {
      // The fan-out commits a batch's message rows and its deliveries at the same time, in
      // two files; a crash between the two commits leaves deliveries whose row is not stored
      // yet, and the batch, not acknowledged, is fanned out again once its lease runs out.
      // Until then the delivery waits without using up an attempt. An unreadable job, or a
      // row still missing long after, will not get better.
      const bool wait = body.status().code() == StatusCode::kNotFound &&
                        NowMs() - delivery.enqueued_unix_ms < kMissingMessageWait.count();
      if (wait) {  // each second, for every such delivery after a crash: not a warning each time
        spdlog::debug("webhooks: delivery of {} to {} waits for its message: {}", message_id, id,
                      body.status().ToString());
        Settle(id, delivery.lease_id, false, std::chrono::seconds(1), body.status().ToString(),
               /*count=*/false);
      } else {
        spdlog::warn("webhooks: delivery of {} to {} dead-lettered: {}", message_id, id,
                     body.status().ToString());
        broker_.FailAsync(EndpointQueue(id), delivery.lease_id, body.status().ToString(),
                          [](const StatusOr<bool>&) {});
      }
      return;
    }
    const int64_t now = NowMs();
    outbound::Request request =
        SignedRequest(lane.endpoint, message_id, **body, now, options_.request_timeout);
    ++lane.in_flight;
    ++in_flight_;
    ++outstanding_;
    Answer answer;
    answer.endpoint_id = id;
    answer.message_id = std::move(message_id);
    answer.delivery = std::move(delivery);
    answer.sent_ms = now;
    answer.url = request.url;
    answer.request_headers = request.headers;
    answer.permit = std::move(permit);
    client_.Send(std::move(request),
                 [this, answer = std::move(answer)](outbound::Response response) mutable {
                   answer.response = std::move(response);
                   Post(std::move(answer));
                 });
  }

  void Handle(Answer& a) {
    --outstanding_;
    auto it = lanes_.find(a.endpoint_id);
    Lane* lane = it == lanes_.end() ? nullptr : &it->second;
    if (lane != nullptr) {
      --lane->in_flight;
    }
    --in_flight_;
    const outbound::Response& r = a.response;
    const int64_t now = NowMs();
    Attempt attempt;
    attempt.message_id = std::move(a.message_id);
    attempt.endpoint_id = a.endpoint_id;
    attempt.attempt = a.delivery.attempt;
    attempt.created_ms = a.sent_ms;
    attempt.url = a.url;
    attempt.request_headers = a.request_headers;
    attempt.response_status = r.status;
    attempt.response_body = r.body;
    attempt.latency_us = r.latency.count();

    resilience::Outcome outcome = resilience::Outcome::kTransient;
    if (!r.error.ok()) {
      attempt.error = r.error.ToString();
      // A refused address (SSRF guard) or a URL that cannot work will not get better.
      outcome = (r.error.code() == StatusCode::kPermissionDenied ||
                 r.error.code() == StatusCode::kInvalidArgument)
                    ? resilience::Outcome::kPermanent
                    : resilience::Outcome::kTransient;
    } else {
      outcome = resilience::ClassifyHttpStatus(r.status);
      if (outcome != resilience::Outcome::kSuccess) {
        attempt.error = fmt::format("HTTP {}", r.status);
      }
    }
    if (a.permit) {
      a.permit->Record(outcome);
    }
    switch (outcome) {
      case resilience::Outcome::kSuccess:
        attempt.outcome = "succeeded";
        Settle(a.endpoint_id, a.delivery.lease_id, true, milliseconds(0), "", true);
        if (lane != nullptr && lane->endpoint.failing_since_ms != 0) {
          lane->endpoint.failing_since_ms = 0;
          hooks_.set_failing(a.endpoint_id, 0);
        }
        Count(succeeded_);
        break;
      case resilience::Outcome::kGone:
        attempt.outcome = "failed";
        hooks_.disable(a.endpoint_id, "the endpoint answered 410 Gone");
        Count(failed_);
        break;
      case resilience::Outcome::kPermanent:
        attempt.outcome = "failed";
        Count(failed_);
        break;
      case resilience::Outcome::kTransient: {
        std::optional<milliseconds> retry_after;
        if (r.error.ok()) {
          for (const auto& [name, value] : r.headers) {
            if (name.size() == 11 && strncasecmp(name.c_str(), "retry-after", 11) == 0) {
              retry_after = resilience::ParseRetryAfter(value, clock_.Now());
            }
          }
        }
        const auto delay =
            retry_.NextDelay(a.delivery.attempt, milliseconds(0), retry_after, rng_());
        if (delay) {
          attempt.outcome = "retrying";
          Settle(a.endpoint_id, a.delivery.lease_id, false, *delay, attempt.error, true);
          Count(retrying_);
        } else {
          attempt.outcome = "failed";
          Count(failed_);
        }
        if (lane != nullptr) {
          if (lane->endpoint.failing_since_ms == 0) {
            lane->endpoint.failing_since_ms = now;
            hooks_.set_failing(a.endpoint_id, now);
          } else if (now - lane->endpoint.failing_since_ms > options_.disable_after.count()) {
            hooks_.disable(a.endpoint_id,
                           fmt::format("failing without a success since {}",
                                       FormatUnixMillis(lane->endpoint.failing_since_ms)));
          }
        }
        break;
      }
    }
    if (attempt.outcome == "failed") {
      // Recorded durably first, dead-lettered after (by the hook): see DispatcherHooks::fail.
      hooks_.fail(std::move(attempt), a.delivery.lease_id);
      return;
    }
    const std::string state = attempt.outcome == "retrying" ? "pending" : attempt.outcome;
    hooks_.record(std::move(attempt), state);
  }

  void Settle(const std::string& endpoint_id, const std::string& lease_id, bool ack,
              milliseconds delay, std::string error, bool count) {
    const std::string queue = EndpointQueue(endpoint_id);
    auto log = [endpoint_id](const StatusOr<bool>& r) {
      if (!r.ok()) {
        spdlog::warn("webhooks: settling a delivery of {}: {}", endpoint_id, r.status().ToString());
      }
    };
    if (ack) {
      // Acks of one loop turn go out as one batch per endpoint (FlushAcks).
      pending_acks_[endpoint_id].push_back(lease_id);
    } else {
      broker_.NackAsync(queue, lease_id,
                        {.delay = delay, .error = std::move(error), .count_attempt = count}, log);
    }
  }

  static void Count(metrics::Counter* c) {
    if (c != nullptr) {
      c->Inc();
    }
  }

  const Options options_;
  queue::Broker& broker_;
  outbound::Client& client_;
  const Clock& clock_;
  DispatcherHooks hooks_;
  metrics::Registry* registry_;
  resilience::RetryPolicy retry_;
  std::unique_ptr<resilience::RateLimiter> limiter_;
  std::mt19937_64 rng_;
  metrics::Counter* succeeded_ = nullptr;
  metrics::Counter* retrying_ = nullptr;
  metrics::Counter* failed_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> inbox_;  // guarded by mu_
  bool stopping_ = false;    // guarded by mu_

  // Dispatcher thread only.
  std::map<std::string, Lane> lanes_;
  int outstanding_ = 0;  // leases and requests whose answer has not arrived
  int in_flight_ = 0;    // requests sent, answer not yet handled
  int reserved_ = 0;     // deliveries held, or asked for by a lease not yet answered
  std::string rr_cursor_;
  std::map<std::string, std::vector<std::string>> pending_acks_;
  std::atomic<size_t> lane_count_{0};  // lanes_.size(), for other threads
  Clock::SteadyTime stop_deadline_{};  // leases and requests whose answer has not arrived
  std::thread thread_;
};

}  // namespace

StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Start(const Options& options,
                                                        queue::Broker& broker,
                                                        outbound::Client& client,
                                                        const Clock& clock, DispatcherHooks hooks,
                                                        metrics::Registry* registry) {
  resilience::RetryOptions retry;
  retry.schedule = options.retry_schedule;
  retry.schedule_jitter = options.retry_jitter;
  retry.max_attempts = static_cast<int>(options.retry_schedule.size()) + 1;
  retry.retry_after_max = options.max_retry_after;
  EVO_ASSIGN_OR_RETURN(resilience::RetryPolicy policy, resilience::RetryPolicy::Create(retry));
  resilience::RateLimiterOptions limits;
  limits.name = "webhooks";
  limits.max_keys = 100'000;
  EVO_ASSIGN_OR_RETURN(auto limiter, resilience::RateLimiter::Create(limits, clock, registry));
  auto d = std::make_unique<DispatcherImpl>(options, broker, client, clock, std::move(hooks),
                                            registry, std::move(policy), std::move(limiter));
  d->Begin();
  return std::unique_ptr<Dispatcher>(std::move(d));
}

}  // namespace evo::webhooks
