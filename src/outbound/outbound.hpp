// The outbound module: outbound HTTP for evo's webhook and notification delivery.
//
//   ssrf.hpp     the SSRF guard: CIDRs, the forbidden address ranges, the allow-list
//                (--webhooks-allow-cidr), URL parsing and checking (ParseUrl, CheckUrl)
//   client.hpp   Client: libcurl multi on one thread, connection reuse, timeouts, no redirects,
//                the guard enforced on every address at connect time
//
// Those two headers are the module's contract; this one includes both for convenience.
// Everything else in src/outbound is private (test_server.hpp is a test helper).
#pragma once

#include "outbound/client.hpp"
#include "outbound/ssrf.hpp"
