// HTTP adapter of the bandit module: /v1/experiments[/{name}[/pulls|/rewards|/stats]] and the
// original bandit server's surface (/arms, /arms/stats) mapped onto a default experiment.
#pragma once

#include <string>

#include "bandit/bandit.hpp"
#include "core/metrics.hpp"
#include "http/router.hpp"

namespace evo::bandit {

// Registers the routes and the bandit metrics. `compat_experiment` names the experiment that
// /arms and /arms/stats use ("" = no compatibility routes). `service` and `registry` must
// outlive the router.
void RegisterRoutes(http::Router& router, Service& service, metrics::Registry& registry,
                    const std::string& compat_experiment);

}  // namespace evo::bandit
