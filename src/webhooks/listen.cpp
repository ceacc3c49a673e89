#include "webhooks/listen.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/logging.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "webhooks/signature.hpp"

namespace evo::webhooks {
namespace {

using nlohmann::json;

class ListenerImpl final : public Listener {
 public:
  explicit ListenerImpl(ListenOptions options) : options_(std::move(options)) {
    const std::vector<std::string> patterns = {"/", "/{a}", "/{a}/{b}", "/{a}/{b}/{c}"};
    for (const std::string& p : patterns) {
      router_.Post(p, [this](const http::Request& r) { return Receive(r); });
    }
    router_.Get("/stats", [this](const http::Request&) -> StatusOr<http::Response> {
      return http::Response::Text(200, StatsJson(), "application/json");
    });
    router_.Get("/latency", [this](const http::Request&) -> StatusOr<http::Response> {
      std::vector<double> deliveries;
      std::vector<double> messages;
      {
        std::lock_guard lock(mu_);
        deliveries = delivery_lag_ms_;
        messages = message_lag_ms_;
      }
      return http::Response::Json(
          200, {{"deliveries", Summary(deliveries)}, {"messages", Summary(messages)}});
    });
  }
  ~ListenerImpl() override { Stop(); }

  Status Begin() {
    http::ServerOptions o;
    o.listen = options_.listen;
    o.threads = 2;
    o.access_log = false;
    o.max_body_bytes = 16 << 20;
    EVO_ASSIGN_OR_RETURN(server_, http::Server::Start(o, router_, registry_));
    return OkStatus();
  }

  uint16_t port() const override { return server_->port(); }

  std::string StatsJson() const override {
    std::lock_guard lock(mu_);
    json by_path = json::object();
    for (const auto& [path, counts] : by_path_) {
      by_path[path] = {{"received", counts.first}, {"distinct", counts.second}};
    }
    return json{{"received", received_},     {"distinct", seen_.size()},
                {"duplicates", duplicates_}, {"badSignatures", bad_signatures_},
                {"failed", failed_},         {"verifications", verifications_},
                {"byPath", by_path}}
        .dump();
  }

  void Stop() override {
    if (server_) {
      server_->Stop();
    }
  }

 private:
  // {n, mean, min, p50, p90, p99, p999, max} in ms, rounded to µs.
  static json Summary(std::vector<double>& v) {
    if (v.empty()) {
      return {{"n", 0}};
    }
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
      const auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
      return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
    };
    auto r = [](double x) { return std::round(x * 1000) / 1000; };
    double sum = 0;
    for (double x : v) {
      sum += x;
    }
    return {{"n", v.size()},        {"mean", r(sum / static_cast<double>(v.size()))},
            {"min", r(v.front())},  {"p50", r(at(0.5))},
            {"p90", r(at(0.9))},    {"p99", r(at(0.99))},
            {"p999", r(at(0.999))}, {"max", r(v.back())}};
  }

  StatusOr<http::Response> Receive(const http::Request& r) {
    const int64_t arrived_us =
        std::chrono::duration_cast<std::chrono::microseconds>(RealClock().Now().time_since_epoch())
            .count();
    const std::string id(r.headers.Get(kWebhookIdHeader).value_or(""));
    const std::string ts(r.headers.Get(kWebhookTimestampHeader).value_or(""));
    const std::string sig(r.headers.Get(kWebhookSignatureHeader).value_or(""));
    Status verified = OkStatus();
    if (!options_.secrets.empty()) {
      verified =
          Verify(options_.secrets, id, ts, sig, r.body, UnixMillis(RealClock().Now()) / 1000);
    }
    const json body = json::parse(r.body, nullptr, false);
    // Checked reads: the body is whatever a sender sent.
    std::string type;
    if (const auto t = body.is_object() ? body.find("type") : body.end();
        body.is_object() && t != body.end() && t->is_string()) {
      type = t->get<std::string>();
    }
    if (options_.delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.delay_ms));
    }
    int status = options_.status > 0 ? options_.status : 204;
    bool duplicate = false;
    {
      std::lock_guard lock(mu_);
      ++received_;
      auto& path_counts = by_path_[r.path];
      ++path_counts.first;
      if (!verified.ok()) {
        ++bad_signatures_;
        status = 401;
      } else if (type == "webhook.verification" && options_.status == 0) {
        ++verifications_;
        status = 200;
      } else if (fail_first_used_ < options_.fail_first ||
                 (options_.fail_every > 0 && ++deliveries_ % options_.fail_every == 0)) {
        fail_first_used_ = std::min(fail_first_used_ + 1, options_.fail_first);
        ++failed_;
        status = 500;
      } else if (status >= 200 && status < 300) {
        // Distinct per receiving path: several endpoints may point at one listener.
        duplicate = !seen_.insert(r.path + " " + id).second;
        duplicates_ += duplicate ? 1 : 0;
        path_counts.second += duplicate ? 0 : 1;
        // Lag: the first arrival against the event's "timestamp" (when evo accepted it).
        if (!duplicate && body.is_object() && body.contains("timestamp") &&
            body["timestamp"].is_string()) {
          if (auto ts = ParseTimestamp(body["timestamp"].get<std::string>()); ts.ok()) {
            const double lag_ms =
                static_cast<double>(
                    arrived_us -
                    std::chrono::duration_cast<std::chrono::microseconds>(ts->time_since_epoch())
                        .count()) /
                1000.0;
            if (delivery_lag_ms_.size() < kMaxLagSamples) {
              delivery_lag_ms_.push_back(lag_ms);
              if (seen_messages_.insert(id).second) {
                message_lag_ms_.push_back(lag_ms);
              }
            }
          }
        }
      } else {
        ++failed_;
      }
    }
    if (options_.print) {
      // The id and type are the sender's text: escaped, so that a CR or LF in them cannot
      // forge a line of this output.
      const std::string shown_id = logging::JsonEscape(id);
      const std::string shown_type = logging::JsonEscape(type);
      std::printf("%s %s %s %d%s%s\n", FormatTimestamp(RealClock().Now()).c_str(),
                  id.empty() ? "-" : shown_id.c_str(), type.empty() ? "-" : shown_type.c_str(),
                  status, verified.ok() ? "" : " bad-signature", duplicate ? " duplicate" : "");
      std::fflush(stdout);
    }
    if (status == 200 && type == "webhook.verification" && options_.status == 0) {
      const auto c = body.find("challenge");
      return http::Response::Json(
          200, {{"challenge", c != body.end() && c->is_string() ? c->get<std::string>() : ""}});
    }
    if (status == 401) {
      return http::Response::Json(401, {{"error", std::string(verified.message())}});
    }
    http::Response answer =
        status == 204 ? http::Response::Empty(204) : http::Response::Text(status, "", "text/plain");
    if (status >= 300 && options_.retry_after_s > 0) {
      answer.headers.Set("Retry-After", std::to_string(options_.retry_after_s));
    }
    return answer;
  }

  ListenOptions options_;
  http::Router router_;
  metrics::Registry registry_;
  std::unique_ptr<http::Server> server_;

  mutable std::mutex mu_;
  uint64_t received_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t bad_signatures_ = 0;
  uint64_t failed_ = 0;
  uint64_t verifications_ = 0;
  int fail_first_used_ = 0;
  uint64_t deliveries_ = 0;  // past the first fail_first, for fail_every
  std::unordered_set<std::string> seen_;
  static constexpr size_t kMaxLagSamples = 10'000'000;
  std::vector<double> delivery_lag_ms_;  // per (path, webhook-id): first arrival - timestamp
  std::unordered_set<std::string> seen_messages_;
  std::vector<double> message_lag_ms_;  // per webhook-id: its first arrival on any path
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_path_;  // received, distinct
};

}  // namespace

StatusOr<std::unique_ptr<Listener>> Listener::Start(const ListenOptions& options) {
  for (const std::string& key : options.secrets) {
    if (!DecodeSecret(key).ok() && !DecodePublicKey(key).ok()) {
      return InvalidArgumentError("--secret: not a whsec_ secret or whpk_ public key");
    }
  }
  if (options.status != 0 && (options.status < 200 || options.status > 599)) {
    return InvalidArgumentError("--status: 200..599");
  }
  auto listener = std::make_unique<ListenerImpl>(options);
  EVO_RETURN_IF_ERROR(listener->Begin());
  return std::unique_ptr<Listener>(std::move(listener));
}

}  // namespace evo::webhooks
