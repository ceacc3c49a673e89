// Calls in flight per key.
#include "resilience/resilience.hpp"

namespace evo::resilience {

Status Validate(const BulkheadOptions& options) {
  if (options.name.empty()) {
    return InvalidArgumentError("name must not be empty");
  }
  if (options.max_concurrent < 1) {
    return InvalidArgumentError("max_concurrent must be at least 1");
  }
  if (options.max_keys < 1) {
    return InvalidArgumentError("max_keys must be at least 1");
  }
  return OkStatus();
}

Bulkhead::Permit::Permit(Permit&& other) noexcept
    : bulkhead_(other.bulkhead_), entry_(other.entry_) {
  other.bulkhead_ = nullptr;
}

Bulkhead::Permit& Bulkhead::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    bulkhead_ = other.bulkhead_;
    entry_ = other.entry_;
    other.bulkhead_ = nullptr;
  }
  return *this;
}

Bulkhead::Permit::~Permit() { Release(); }

void Bulkhead::Permit::Release() {
  if (bulkhead_ != nullptr) {
    Bulkhead* bulkhead = bulkhead_;
    bulkhead_ = nullptr;
    bulkhead->Release(entry_);
  }
}

StatusOr<std::unique_ptr<Bulkhead>> Bulkhead::Create(BulkheadOptions options,
                                                     metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  return std::unique_ptr<Bulkhead>(new Bulkhead(std::move(options), registry));
}

Bulkhead::Bulkhead(BulkheadOptions options, metrics::Registry* registry)
    : options_(std::move(options)) {
  if (registry != nullptr) {
    in_flight_metric_ =
        &registry
             ->AddGauge("evo_bulkhead_in_flight",
                        "Calls in flight through a bulkhead, over all keys.", {"name"})
             .Get({options_.name});
    rejected_metric_ =
        &registry
             ->AddCounter("evo_bulkhead_rejected_total", "Calls refused by a bulkhead.", {"name"})
             .Get({options_.name});
  }
}

Bulkhead::~Bulkhead() = default;

std::optional<Bulkhead::Permit> Bulkhead::TryAcquire(std::string_view key) {
  return TryAcquire(key, options_.max_concurrent);
}

std::optional<Bulkhead::Permit> Bulkhead::TryAcquire(std::string_view key, int max_concurrent) {
  std::lock_guard<std::mutex> lock(mu_);
  if (max_concurrent >= 1) {
    auto it = table_.find(key);
    if (it == table_.end() && table_.size() < options_.max_keys) {
      it = table_.emplace(std::string(key), 0).first;
    }
    if (it != table_.end() && it->second < max_concurrent) {
      ++it->second;
      ++in_flight_;
      if (in_flight_metric_ != nullptr) {
        in_flight_metric_->Inc();
      }
      return Permit(this, &*it);
    }
  }
  ++rejected_;
  if (rejected_metric_ != nullptr) {
    rejected_metric_->Inc();
  }
  return std::nullopt;
}

void Bulkhead::Release(Table::value_type* entry) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  if (in_flight_metric_ != nullptr) {
    in_flight_metric_->Dec();
  }
  if (--entry->second == 0) {
    // Elements never move in an unordered_map, so `entry` is still the key's element; an idle
    // key keeps no state, which is what bounds the table by the keys in flight.
    table_.erase(table_.find(entry->first));
  }
}

int Bulkhead::InFlight(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = table_.find(key);
  return it == table_.end() ? 0 : it->second;
}

Bulkhead::Stats Bulkhead::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return Stats{table_.size(), in_flight_, rejected_};
}

}  // namespace evo::resilience
