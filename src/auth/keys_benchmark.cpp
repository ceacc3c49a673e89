// Micro-benchmarks of API key verification: what the HTTP layer pays per request (Verify, an
// in-memory lookup and one SHA-256) and per second (Refresh with nothing changed).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "auth/keys.hpp"
#include "core/temp_dir.hpp"

namespace evo::auth {
namespace {

struct Fixture {
  evo::testing::TempDir dir;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<KeyStore> keys;
  std::string key;

  explicit Fixture(int n_keys) {
    db = store::OpenSqlite({.path = dir.File("evo.db")}).value();
    keys = KeyStore::Open(*db, RealClock()).value();
    for (int i = 0; i < n_keys; ++i) {
      KeySpec spec;
      spec.name = "bench";
      spec.scopes = {"ids:read", "queue:write"};
      key = keys->Create(spec).value().key;
    }
  }
};

void BM_VerifyValidKey(  // NOLINT(readability-identifier-naming)
    benchmark::State& state) {
  static Fixture* const f = new Fixture(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto p = f->keys->Verify(f->key);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_VerifyValidKey)->Arg(100)->Threads(1)->Threads(2);

void BM_VerifyMalformed(  // NOLINT(readability-identifier-naming)
    benchmark::State& state) {
  static Fixture* const f = new Fixture(1);
  const std::string garbage(size_t{100} * 1024, 'a');
  for (auto _ : state) {
    auto p = f->keys->Verify(garbage);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_VerifyMalformed);

void BM_RefreshUnchanged(  // NOLINT(readability-identifier-naming)
    benchmark::State& state) {
  static Fixture* const f = new Fixture(100);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f->keys->Refresh());
  }
}
BENCHMARK(BM_RefreshUnchanged);

}  // namespace
}  // namespace evo::auth
