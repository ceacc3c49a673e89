#include "http/operational.hpp"

#include <utility>

namespace evo::http {
namespace {

nlohmann::json JsonResponseDoc(std::string_view description, nlohmann::json schema) {
  return {{"description", description},
          {"content", {{"application/json", {{"schema", std::move(schema)}}}}}};
}

nlohmann::json StatusSchema() {
  return {{"type", "object"},
          {"properties",
           {{"status", {{"type", "string"}}},
            {"components", {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}}}}}};
}

}  // namespace

void Readiness::Set(const std::string& component, bool ready, std::string reason) {
  std::lock_guard lock(mu_);
  known_[component] = ready;
  if (ready) {
    not_ready_.erase(component);
  } else {
    not_ready_[component] = reason.empty() ? "not ready" : std::move(reason);
  }
}

void Readiness::SetDraining() {
  std::lock_guard lock(mu_);
  draining_ = true;
}

bool Readiness::Ready() const {
  std::lock_guard lock(mu_);
  return !draining_ && not_ready_.empty();
}

nlohmann::json Readiness::Describe() const {
  std::lock_guard lock(mu_);
  nlohmann::json components = nlohmann::json::object();
  for (const auto& [name, ready] : known_) {
    if (ready) {
      components[name] = "ok";
    } else {
      const auto it = not_ready_.find(name);
      components[name] = it != not_ready_.end() ? it->second : "not ready";
    }
  }
  const char* status = draining_ ? "draining" : (not_ready_.empty() ? "ready" : "not ready");
  return {{"status", status}, {"components", std::move(components)}};
}

void RegisterOperationalRoutes(Router& router, const Readiness& readiness,
                               const metrics::Registry& registry, std::string version) {
  RouteOptions livez;
  livez.openapi = {{"summary", "Liveness: the process is up."},
                   {"operationId", "livez"},
                   {"tags", {"operational"}},
                   {"responses", {{"200", JsonResponseDoc("Alive.", StatusSchema())}}}};
  router.Get(
      "/livez",
      [](const Request&) -> StatusOr<Response> {
        return Response::Json(200, {{"status", "ok"}});
      },
      std::move(livez));

  RouteOptions readyz;
  readyz.openapi = {
      {"summary", "Readiness: every component is ready and the process is not draining."},
      {"operationId", "readyz"},
      {"tags", {"operational"}},
      {"responses",
       {{"200", JsonResponseDoc("Ready.", StatusSchema())},
        {"503", JsonResponseDoc("Starting, degraded or draining.", StatusSchema())}}}};
  router.Get(
      "/readyz",
      [&readiness](const Request&) -> StatusOr<Response> {
        // Describe() and Ready() lock separately; derive readiness from the one snapshot so
        // the code and the body never disagree.
        nlohmann::json description = readiness.Describe();
        const bool ready = description.value("status", "") == "ready";
        return Response::Json(ready ? 200 : 503, description);
      },
      std::move(readyz));

  RouteOptions metrics;
  metrics.openapi = {{"summary", "Prometheus metrics (text exposition format 0.0.4)."},
                     {"operationId", "metrics"},
                     {"tags", {"operational"}},
                     {"responses",
                      {{"200",
                        {{"description", "Metrics."},
                         {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}}}}};
  router.Get(
      "/metrics",
      [&registry](const Request&) -> StatusOr<Response> {
        return Response::Text(200, registry.RenderText(),
                              "text/plain; version=0.0.4; charset=utf-8");
      },
      std::move(metrics));

  RouteOptions openapi;
  openapi.openapi = {
      {"summary", "This OpenAPI 3.1 document."},
      {"operationId", "openapi"},
      {"tags", {"operational"}},
      {"responses", {{"200", JsonResponseDoc("The document.", {{"type", "object"}})}}}};
  router.Get(
      "/openapi.json",
      [&router, version = std::move(version)](const Request&) -> StatusOr<Response> {
        return Response::Json(200, router.OpenApi("evo", version));
      },
      std::move(openapi));
}

}  // namespace evo::http
