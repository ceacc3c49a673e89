// Operational routes every evo process serves: /livez, /readyz, /metrics, /openapi.json.
//
// Readiness is the AND of named components (an ids generator waiting for its clock, a store
// opening) and the process not draining. /readyz answers 200 {"status":"ready"} or 503 with
// the components that are not ready.
//
// Thread safety: Readiness may be read and set from any thread.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "core/metrics.hpp"
#include "http/router.hpp"

namespace evo::http {

class Readiness {
 public:
  // Marks `component` ready or not, with a short human reason when not ready.
  void Set(const std::string& component, bool ready, std::string reason = {});
  // Process-wide: once draining, /readyz is 503 whatever the components say.
  void SetDraining();
  bool Ready() const;
  // {"status":"ready"|"not ready"|"draining","components":{"ids":"ok"|reason,...}}
  nlohmann::json Describe() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> not_ready_;  // component -> reason; guarded by mu_
  std::map<std::string, bool> known_;             // guarded by mu_
  bool draining_ = false;                         // guarded by mu_
};

// Registers /livez, /readyz, /metrics and /openapi.json (title "evo", `version`) on `router`.
// All arguments must outlive the router.
void RegisterOperationalRoutes(Router& router, const Readiness& readiness,
                               const metrics::Registry& registry, std::string version);

}  // namespace evo::http
