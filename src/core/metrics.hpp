// Metrics registry with Prometheus text exposition (format 0.0.4).
//
// Modules take a `metrics::Registry&` and create their families once at start-up; the hot
// path then only touches a child's atomics:
//
//   auto& issued = registry.AddCounter("evo_ids_issued_total", "IDs issued.");
//   issued.Get().Inc(n);                       // unlabelled
//   auto& reqs = registry.AddCounter("evo_http_requests_total", "HTTP requests.",
//                                    {"route", "method", "code"});
//   reqs.Get({"/v1/ids", "GET", "200"}).Inc();   // child created on first use
//
// Names follow Prometheus conventions: base units (`_seconds`, `_bytes`), counters end in
// `_total`. Adding a family twice with the same name and type returns the first one.
//
// Thread safety: everything here may be used from any number of threads. Children returned
// by Get() live as long as the registry, unless Remove() drops them.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace evo::metrics {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // REQUIRES: v >= 0.
  void Inc(double v = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1.0);
  void Dec(double v = 1.0) { Inc(-v); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds` are the upper bounds of the buckets, strictly increasing; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound (last is +Inf), sum and count, read for exposition.
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  const std::vector<double>& Bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

// Default latency buckets in seconds: 100 µs .. 10 s.
std::vector<double> DefaultLatencyBuckets();

// A named metric with fixed label names and one child per distinct label-value tuple.
template <typename T>
class Family {
 public:
  // Returns the child for `values` (one per label name, in order), creating it on first use.
  // A wrong number of values yields the child for the values padded/truncated to fit.
  T& Get(const LabelValues& values = {});
  // Removes the child for `values` (padded/truncated as in Get), which stops being exported:
  // for label values that are gone for good (a deleted queue). The reference Get returned
  // for it dangles afterwards: the caller must hold none. No-op when there is no such child.
  void Remove(const LabelValues& values);

 private:
  friend class Registry;
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<T>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;  // guarded by mu_
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names = {},
                                  std::vector<double> bounds = DefaultLatencyBuckets());
  // A gauge whose value is read from `read` at exposition time (must be thread-safe and
  // cheap; it runs under the registry's lock).
  void AddGaugeCallback(std::string name, std::string help, std::function<double()> read);
  // A counter whose value is read from `read` at exposition time, for components that keep
  // their own monotonic counts (same rules as AddGaugeCallback; `read` must never decrease).
  void AddCounterCallback(std::string name, std::string help, std::function<double()> read);

  // Prometheus text exposition of every family, sorted by name; passes `promtool check metrics`.
  std::string RenderText() const;

 private:
  struct Entry;
  Entry& FindOrAdd(std::string name, std::string help, int kind,
                   std::vector<std::string> label_names, std::vector<double> bounds);
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> families_;  // guarded by mu_
};

}  // namespace evo::metrics
