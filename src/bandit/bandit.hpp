// The bandit module: experiments that answer "which variant should I show?" and learn from
// rewards that arrive later. Public contract for the composition root and the HTTP adapter.
//
// An experiment has named arms (with optional JSON payloads), a policy (policy.hpp), a reward
// type and an attribution window. A pull picks an arm and returns a pull id; a reward names
// the pull id and is credited to the arm served for that pull, at most once. A pull whose
// reward has not come when the window ends counts as reward 0 for the policy; a reward that
// comes later is still recorded in the arm's statistics (not fed to the policy twice) until
// the pull is purged one more window later. Pending pulls live in a per-experiment ring
// indexed by sequence (pending.hpp): memory is rate x 2 windows x 8 bytes, capped at
// `max_pending_pulls` entries an experiment (beyond it the oldest pulls expire early, as 0 for
// the policy, and are purged: a reward for one is refused as too old). Sticky units (a pull
// with a unit id gets the unit's earlier arm) are kept for the `max_sticky_units` most
// recently seen units of each experiment (sticky.hpp); an evicted unit is assigned again.
//
// Identity: every experiment gets a uid that is never given again, not even after it is
// deleted (a high-water mark in the store, raised past any uid found on disk at Open). Pull
// ids are "<uid>.<sequence>", journal and snapshot records carry the uid, so nothing of a
// deleted experiment is ever credited to another.
//
// Durability: experiment definitions are rows of the `store` database (table
// bandit_experiments), committed with TxMode::kDurable before Create, Update and Delete
// return (they survive an OS crash). Pulls, rewards, expiries and sticky assignments go to a
// memory-mapped journal before they are acknowledged (journal.hpp): after kill -9 the state
// is exactly what was acknowledged. What an OS crash or power loss keeps depends on `sync`:
//   kNone      records since the last durable snapshot may be lost (unless the kernel's
//              writeback, ~30 s on Linux, wrote them);
//   kInterval  the journal is msynced by Tick every `sync_interval`: the last interval (plus
//              the time a Tick takes) may be lost;
//   kAlways    Pull and Reward return after the msync of their record: nothing acknowledged
//              is lost (each answer waits for the disk).
// A snapshot of every experiment's state is written every `snapshot_interval` (each
// experiment's counters and policy copied under its lock, its pending ring and sticky units
// captured copy-on-write and streamed out after it, ~4 bits a pull with a few arms), fsynced,
// renamed into place and the directory fsynced; only then are the journals it replaces
// deleted. A failed snapshot keeps every journal, is logged and returned by Tick, and is
// retried after `snapshot_retry` (the first retry) doubling up to `snapshot_interval`. On
// Open the snapshot is loaded and the journals replayed. Corrupt state on disk never crashes
// the process: a snapshot that does not parse or does not fit the stored experiments, or an
// unreadable definition row, fails Open with DataLoss naming the file or row (evo will not
// start on it); journal records that fail their checksum or name an arm or experiment that
// does not exist are skipped (they were never acknowledged, or belong to a deleted
// experiment) and counted in the log.
//
// Errors:
//   InvalidArgument     a bad spec (name, no arms, duplicate arm names, bad policy
//                       parameters), a reward out of range or not finite, a malformed pull id
//   NotFound            an unknown experiment or arm; a pull id never issued or already purged
//   AlreadyExists       creating an experiment that exists; a second reward for one pull
//   Unavailable         the journal could not be written or synced (with kAlways, a reward
//                       or pull whose msync failed is in memory but was not acknowledged)
//   ResourceExhausted   the journal is full until the next snapshot (Retry-After 1); the
//                       uids are used up (2^32 - 1 experiments created)
//
// Thread safety: a Service may be shared by any number of threads; each experiment has its
// own mutex, held for a few hundred nanoseconds per pull, never across a store write or an
// msync. Definition changes (Create, Update, Delete, a stop rule's winner) are serialised
// with each other and wait for their durable commit without blocking pulls.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bandit/policy.hpp"
#include "core/clock.hpp"
#include "core/status.hpp"
#include "store/store.hpp"

namespace evo::bandit {

struct ArmSpec {
  std::string name;                  // 1..64 printable characters, unique in the experiment
  nlohmann::json payload = nullptr;  // what to show for this arm (any JSON, <= 16 KiB)
  bool retired = false;              // never chosen again; its statistics stay
};

struct ExperimentSpec {
  std::string name;  // [A-Za-z0-9._-]{1,64}
  std::vector<ArmSpec> arms;
  PolicyOptions policy;
  RewardType reward_type = RewardType::kBernoulli;
  int64_t attribution_window_s = 3600;  // 1 s .. 30 days
  double min_traffic = 0;               // each active arm gets at least this share of pulls
  // Stop rule: once an arm's probability of being best reaches `stop_probability` after at
  // least `stop_min_pulls` pulls, the experiment stops and always serves that arm.
  double stop_probability = 0;  // 0 = never stop; else 0.5..1
  int64_t stop_min_pulls = 0;
  // Output only.
  std::string created_at;
  std::string updated_at;
  std::optional<std::string> winner;  // set once stopped
};
Status Validate(const ExperimentSpec& spec);
// The API's JSON form (what ToJson writes; output-only fields are ignored). InvalidArgument
// naming the field with a JSON pointer payload. Only "name" and "arms" are required.
StatusOr<ExperimentSpec> ParseSpec(const nlohmann::json& body);
nlohmann::json ToJson(const ExperimentSpec& spec);

struct PullResult {
  std::string pull_id;
  std::string arm;
  nlohmann::json payload;
};

struct ArmStats {
  std::string name;
  bool retired = false;
  int64_t pulls = 0;    // served
  int64_t rewards = 0;  // rewards received (in time or late)
  int64_t expired = 0;  // pulls whose window ended without a reward
  double reward_sum = 0;
  double mean = 0;    // posterior mean of the reward
  double ci_low = 0;  // 95 % credible interval of the mean
  double ci_high = 0;
  double probability_best = 0;  // Monte Carlo from the posteriors
};

struct ExperimentStats {
  std::vector<ArmStats> arms;
  int64_t pulls = 0;
  int64_t pending = 0;           // pulls still inside their window
  int64_t sticky_units = 0;      // units with a remembered arm (at most max_sticky_units)
  double regret_estimate = 0;    // sum of pulls x (best posterior mean - arm's)
  int probability_samples = 0;   // Monte Carlo draws behind probabilityBest
  double probability_error = 0;  // its 95 % error bound (1.96 * sqrt(0.25 / samples))
  std::optional<std::string> winner;
};

// When the journal is msynced (see Durability above).
enum class SyncMode { kNone, kInterval, kAlways };
// "none", "interval", "always"; InvalidArgument otherwise.
StatusOr<SyncMode> ParseSyncMode(std::string_view text);

struct ServiceOptions {
  std::chrono::milliseconds snapshot_interval{30'000};
  std::chrono::milliseconds snapshot_retry{1'000};  // first retry after a failed snapshot
  SyncMode sync = SyncMode::kNone;
  std::chrono::milliseconds sync_interval{1'000};  // kInterval: >= 1 ms
  uint64_t max_sticky_units = 1'000'000;           // per experiment, >= 1 (16 bytes each)
  uint64_t max_pending_pulls = uint64_t{1} << 24;  // per experiment, >= 1 (8 bytes each)
  uint64_t journal_bytes = uint64_t{512} << 20;    // each journal file, allocated on disk
  int probability_samples = 20'000;
  uint64_t seed = 0;  // 0 = from the clock
};
// InvalidArgument naming the field.
Status Validate(const ServiceOptions& options);

// Monotonic counts since Open, for /metrics and tests.
struct ServiceCounters {
  uint64_t journal_syncs = 0;      // msyncs of the journal
  uint64_t snapshots = 0;          // snapshots made durable
  uint64_t snapshot_failures = 0;  // snapshots that failed (their journals kept)
};

class Service {
 public:
  // `db` and `clock` must outlive the service. `dir` holds the journal and snapshot.
  static StatusOr<std::unique_ptr<Service>> Open(store::Database& db,
                                                 const std::filesystem::path& dir,
                                                 const ServiceOptions& options, const Clock& clock);
  ~Service();

  StatusOr<ExperimentSpec> Create(ExperimentSpec spec);
  StatusOr<ExperimentSpec> Get(std::string_view name) const;
  // Experiments ordered by name, starting after `after` (exclusive), at most `limit`.
  std::vector<ExperimentSpec> List(std::string_view after, size_t limit) const;
  // Replaces the mutable parts: policy parameters (not its type), window, min traffic,
  // stop rule, arm payloads and retired flags; arms may be appended (never removed or
  // renamed). InvalidArgument when `spec` would change the policy type or reward type.
  StatusOr<ExperimentSpec> Update(const ExperimentSpec& spec);
  Status Delete(std::string_view name);

  StatusOr<PullResult> Pull(std::string_view experiment, std::string_view unit_id = {});
  // Credits `reward` to the arm served for `pull_id`. Returns the arm's name. With
  // `expected_arm` (the original server's clients name the arm), a pull served another arm
  // is refused with InvalidArgument (reason ARM_MISMATCH) and nothing is credited.
  StatusOr<std::string> Reward(std::string_view experiment, std::string_view pull_id, double reward,
                               std::string_view expected_arm = {});
  StatusOr<ExperimentStats> Stats(std::string_view experiment) const;

  // Expires due pulls, applies stop rules, msyncs the journal when `sync` is kInterval and
  // writes a snapshot when one is due. The server calls it periodically (every 200 ms). It
  // never throws: an exception in its work is logged and returned as Internal, and the next
  // Tick carries on.
  Status Tick();
  // Writes a snapshot now and, once it is durable, deletes the journals it replaces.
  // Unavailable (journals kept) when it could not be written durably.
  Status Snapshot();

  ServiceCounters Counters() const;
  // The options it was opened with.
  const ServiceOptions& options() const;

 private:
  struct Impl;
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace evo::bandit
