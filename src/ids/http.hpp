// HTTP adapter of the ids module: /v1/ids, /v1/ids/{id}, /v1/uuids, /v1/ulids.
#pragma once

#include "core/metrics.hpp"
#include "http/router.hpp"
#include "ids/ids.hpp"

namespace evo::ids {

// Registers the ids routes (with their OpenAPI descriptions) and the ids metrics.
// Every argument must outlive the router.
void RegisterRoutes(http::Router& router, Generator& generator, Uuid7Generator& uuids,
                    UlidGenerator& ulids, const Clock& clock, metrics::Registry& registry);

}  // namespace evo::ids
