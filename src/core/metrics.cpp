#include "core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <variant>

namespace evo::metrics {
namespace {

enum Kind {
  kCounterKind = 0,
  kGaugeKind = 1,
  kHistogramKind = 2,
  kCallbackKind = 3,
  kCounterCallbackKind = 4
};

void AtomicAdd(std::atomic<double>& target, double v) {
  double cur = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

// Prometheus text format: numbers as Go would print them, with +Inf/-Inf/NaN spelled out.
std::string FormatValue(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    // Shortest of %.15g/%.17g that reads back exactly, so 0.0001 prints as 0.0001.
    std::snprintf(buf, sizeof(buf), "%.15g", v);
    if (std::strtod(buf, nullptr) != v) {
      std::snprintf(buf, sizeof(buf), "%.17g", v);
    }
  }
  return buf;
}

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"` without the closing brace (so "le" can be appended), or "" when empty.
std::string LabelPrefix(const std::vector<std::string>& names, const LabelValues& values) {
  if (names.empty()) {
    return "";
  }
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += names[i];
    out += "=\"";
    out += EscapeLabel(i < values.size() ? values[i] : std::string());
    out += '"';
  }
  return out;
}

std::string CloseLabels(const std::string& prefix) { return prefix.empty() ? "" : prefix + "}"; }

}  // namespace

void Counter::Inc(double v) {
  if (v > 0) {
    AtomicAdd(value_, v);
  }
}

void Gauge::Inc(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    buckets_[i].store(0, std::memory_order_relaxed);
  }
}

void Histogram::Observe(double v) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  buckets_[static_cast<size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

template <typename T>
T& Family<T>::Get(const LabelValues& values) {
  LabelValues key = values;
  key.resize(label_names_.size());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(key);
  if (it == children_.end()) {
    it = children_.emplace(std::move(key), make_()).first;
  }
  return *it->second;
}

template <typename T>
void Family<T>::Remove(const LabelValues& values) {
  LabelValues key = values;
  key.resize(label_names_.size());
  std::unique_ptr<T> removed;  // destroyed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = children_.find(key);
    if (it == children_.end()) {
      return;
    }
    removed = std::move(it->second);
    children_.erase(it);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct Registry::Entry {
  std::string name;
  std::string help;
  int kind = kCounterKind;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Gauge>> gauges;
  std::unique_ptr<Family<Histogram>> histograms;
  std::function<double()> callback;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::FindOrAdd(std::string name, std::string help, int kind,
                                     std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end() && it->second->kind == kind) {
    return *it->second;
  }
  // A clash of kinds is a programming error; the later registration wins so that the
  // exposition stays valid (one TYPE per name).
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->help = std::move(help);
  entry->kind = kind;
  switch (kind) {
    case kCounterKind:
      entry->counters.reset(
          new Family<Counter>(std::move(label_names), [] { return std::make_unique<Counter>(); }));
      break;
    case kGaugeKind:
      entry->gauges.reset(
          new Family<Gauge>(std::move(label_names), [] { return std::make_unique<Gauge>(); }));
      break;
    case kHistogramKind:
      entry->histograms.reset(new Family<Histogram>(
          std::move(label_names),
          [b = std::move(bounds)] { return std::make_unique<Histogram>(b); }));
      break;
    default:
      break;
  }
  auto& ref = *entry;
  families_[std::move(name)] = std::move(entry);
  return ref;
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  return *FindOrAdd(std::move(name), std::move(help), kCounterKind, std::move(label_names), {})
              .counters;
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> label_names) {
  return *FindOrAdd(std::move(name), std::move(help), kGaugeKind, std::move(label_names), {})
              .gauges;
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return *FindOrAdd(std::move(name), std::move(help), kHistogramKind, std::move(label_names),
                    std::move(bounds))
              .histograms;
}

void Registry::AddGaugeCallback(std::string name, std::string help, std::function<double()> read) {
  FindOrAdd(std::move(name), std::move(help), kCallbackKind, {}, {}).callback = std::move(read);
}

void Registry::AddCounterCallback(std::string name, std::string help,
                                  std::function<double()> read) {
  FindOrAdd(std::move(name), std::move(help), kCounterCallbackKind, {}, {}).callback =
      std::move(read);
}

std::string Registry::RenderText() const {
  std::string out;
  out.reserve(4096);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& family_entry : families_) {
    const std::string& name = family_entry.first;
    const auto& entry = family_entry.second;
    const bool counter = entry->kind == kCounterKind || entry->kind == kCounterCallbackKind;
    const char* type = counter ? "counter" : entry->kind == kHistogramKind ? "histogram" : "gauge";
    out += "# HELP " + name + " " + EscapeHelp(entry->help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    auto render_simple = [&](auto& family) {
      std::lock_guard<std::mutex> family_lock(family.mu_);
      if (family.children_.empty() && family.label_names_.empty()) {
        out += name + " 0\n";  // an unlabelled metric exists from its registration on
      }
      for (const auto& [values, child] : family.children_) {
        out += name + CloseLabels(LabelPrefix(family.label_names_, values)) + " " +
               FormatValue(child->Value()) + "\n";
      }
    };
    switch (entry->kind) {
      case kCounterKind:
        render_simple(*entry->counters);
        break;
      case kGaugeKind:
        render_simple(*entry->gauges);
        break;
      case kCallbackKind:
      case kCounterCallbackKind:
        out += name + " " + FormatValue(entry->callback ? entry->callback() : 0) + "\n";
        break;
      case kHistogramKind: {
        auto& family = *entry->histograms;
        std::lock_guard<std::mutex> family_lock(family.mu_);
        for (const auto& [values, h] : family.children_) {
          const std::string prefix = LabelPrefix(family.label_names_, values);
          const auto counts = h->CumulativeCounts();
          const auto& bounds = h->Bounds();
          for (size_t i = 0; i <= bounds.size(); ++i) {
            const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
            out.append(name).append("_bucket").append(prefix.empty() ? "{" : prefix + ",");
            out.append("le=\"").append(le).append("\"} ").append(std::to_string(counts[i]));
            out += '\n';
          }
          const std::string labels = CloseLabels(prefix);
          out.append(name).append("_sum").append(labels).append(" ");
          out.append(FormatValue(h->Sum())).append("\n");
          out.append(name).append("_count").append(labels).append(" ");
          out.append(std::to_string(counts.back())).append("\n");
        }
        break;
      }
      default:
        break;
    }
  }
  return out;
}

}  // namespace evo::metrics
