// HTTP adapter of the spam module: /v1/spam/classify, /v1/spam/classify:batch,
// /v1/spam/feedback, /v1/spam/models[/{version}[:activate]].
#pragma once

#include <filesystem>

#include "core/metrics.hpp"
#include "http/router.hpp"
#include "spam/spam.hpp"

namespace evo::spam {

struct RouteSettings {
  // Training from a directory on the server (POST /v1/spam/models {"directory"}) reads only
  // below this one (canonical, absolute), never through a symbolic link. Empty: such requests
  // are refused (403) and only inline messages train.
  std::filesystem::path corpus_root;
};

// Registers the spam routes (with their OpenAPI descriptions) and the spam metrics. `service`
// and `registry` must outlive the router. Training, feedback and activation run on the
// server's blocking threads, and so does classifying a body over 64 KiB.
// Scopes: spam:read to classify and read models, spam:write to give feedback, train from
// inline messages and activate; training from a server directory also needs admin (403
// INSUFFICIENT_SCOPE otherwise, before the path is looked at).
void RegisterRoutes(http::Router& router, Service& service, metrics::Registry& registry,
                    const RouteSettings& settings = {});

}  // namespace evo::spam
