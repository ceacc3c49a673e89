#!/usr/bin/env bash
# Installs the Debian 12 packages evo needs to build, test and benchmark — only those that
# are missing, so a second run is a no-op. One list, here; see docs/ARCHITECTURE.md for why
# each is used. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang-format clang-tidy
  # libraries (DESIGN.md "Chosen dependencies")
  libboost-dev libcurl4-openssl-dev nlohmann-json3-dev libsqlite3-dev libpq-dev
  libnats-dev libhiredis-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  libspdlog-dev libfmt-dev libcli11-dev libssl-dev
  # spam: Unicode normalisation (NFC) of message text
  libunistring-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # the evo binary's allocator (CMake option EVO_MIMALLOC)
  libmimalloc-dev
  # servers and tools the tests and benchmarks start on loopback
  sqlite3 curl faketime prometheus python3-prometheus-client python3-requests python3-jwt python3-cryptography
  wrk redis-server redis-tools postgresql postgresql-contrib nats-server
  # spam benchmark peers (bench/spam.sh)
  bogofilter python3-sklearn
  # the official JSON Schema test suite, run by http_test against http::JsonSchema
  json-schema-test-suite
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js runs the OpenAPI validator in the e2e tests; it may come from another package
# source than Debian's, so look for the command rather than the package.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Servers are started by the tests themselves; do not let package scripts start them.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm tools of the test suite, pinned by their package-lock.json.
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in "$root"/tools/*/; do
  if [ -f "$tool/package-lock.json" ] && [ ! -d "$tool/node_modules" ]; then
    echo "install-deps: npm ci in ${tool#"$root"/}"
    (cd "$tool" && npm ci --silent --no-audit --no-fund)
  fi
done
