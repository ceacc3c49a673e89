// HTTP adapter of the spam module: /v1/spam/classify, /v1/spam/classify:batch,
// /v1/spam/feedback, /v1/spam/models[/{version}[:activate]].
#pragma once

#include "core/metrics.hpp"
#include "http/router.hpp"
#include "spam/spam.hpp"

namespace evo::spam {

// Registers the spam routes (with their OpenAPI descriptions) and the spam metrics. `service`
// and `registry` must outlive the router.
void RegisterRoutes(http::Router& router, Service& service, metrics::Registry& registry);

}  // namespace evo::spam
