// HTTP adapter of the webhooks module: /v1/event-types, /v1/endpoints (with attempts,
// secret rotation, verification, replay and recover) and /v1/messages.
#pragma once

#include "http/router.hpp"
#include "webhooks/webhooks.hpp"

namespace evo::webhooks {

// Registers the routes. `service` must outlive the router.
void RegisterRoutes(http::Router& router, Service& service);

}  // namespace evo::webhooks
