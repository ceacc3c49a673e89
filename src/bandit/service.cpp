#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "bandit/bandit.hpp"
#include "bandit/journal.hpp"
#include "bandit/pending.hpp"
#include "bandit/rng.hpp"
#include "bandit/sticky.hpp"

namespace evo::bandit {
namespace {

// The snapshot file starts with one of these: the version of the pending rings' encoding
// (PendingIndex::kFormat). Version 2 (compact rings) is written; version 1 (8 bytes a ring
// entry) is still read, so a snapshot of an older evo loads after an upgrade.
constexpr uint64_t kSnapshotMagic = 0x3250414e53424f45ULL;    // "EOBSNAP2"
constexpr uint64_t kSnapshotMagicV1 = 0x3150414e53424f45ULL;  // "EOBSNAP1"

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {
      {1,
       "CREATE TABLE bandit_experiments("
       " name TEXT PRIMARY KEY,"
       " uid INTEGER NOT NULL UNIQUE,"
       " spec TEXT NOT NULL,"
       " created_at TEXT NOT NULL,"
       " updated_at TEXT NOT NULL)"},
      // The uid high-water mark: uids are never given twice, even after a delete (MAX(uid)+1
      // gave a deleted experiment's uid, and its journal records, to the next one).
      {2,
       "CREATE TABLE bandit_uid_mark(id INTEGER PRIMARY KEY CHECK (id = 1),"
       " last_uid INTEGER NOT NULL);"
       "INSERT INTO bandit_uid_mark(id, last_uid)"
       " SELECT 1, COALESCE(MAX(uid), 0) FROM bandit_experiments"}};
  return migrations;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

uint64_t HashUnit(std::string_view unit) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : unit) {
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h == 0 ? 1 : h;  // 0 means "no unit"
}

// The runtime state of one experiment. Everything but uid is guarded by mu.
struct Experiment {
  explicit Experiment(uint64_t max_sticky_units) : sticky(max_sticky_units) {}
  uint32_t uid = 0;
  mutable std::mutex mu;
  // Never changed in place: replaced whole, under mu, by a holder of Impl::defs_mu. Readers
  // outside mu copy the pointer under it.
  std::shared_ptr<const ExperimentSpec> spec;
  std::unique_ptr<Policy> policy;
  Rng rng{1};
  std::vector<uint8_t> active;
  std::vector<int64_t> pulls;
  std::vector<int64_t> rewards;
  std::vector<int64_t> expired;
  std::vector<double> reward_sum;
  PendingIndex pending;
  StickyUnits sticky;  // hash(unitId) -> arm, bounded
  int64_t winner = -1;
  // Where this experiment's records go: switched to the next journal by a snapshot at the
  // moment the experiment is captured.
  std::shared_ptr<Journal> journal;

  // Brings the per-arm vectors and the policy up to spec->arms (arms are only appended).
  void SyncArms() {
    const size_t n = spec->arms.size();
    while (policy->arms() < n) {
      policy->AddArm();
    }
    active.resize(n);
    for (size_t i = 0; i < n; ++i) {
      active[i] = spec->arms[i].retired ? 0 : 1;
    }
    pulls.resize(n, 0);
    rewards.resize(n, 0);
    expired.resize(n, 0);
    reward_sum.resize(n, 0);
    if (winner < 0 && spec->winner) {
      for (size_t i = 0; i < n; ++i) {
        if (spec->arms[i].name == *spec->winner) {
          winner = static_cast<int64_t>(i);
        }
      }
    }
  }
};

template <typename T>
void PutRaw(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
bool GetRaw(std::string_view& in, T& v) {
  if (in.size() < sizeof v) {
    return false;
  }
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}

}  // namespace

// ---- spec --------------------------------------------------------------------------------

Status Validate(const ExperimentSpec& s) {
  if (!ValidName(s.name)) {
    return InvalidArgumentError("name must be 1..64 characters of A-Z a-z 0-9 . _ -")
        .With(kPayloadPointer, "#/name");
  }
  if (s.arms.empty()) {
    return InvalidArgumentError("an experiment needs at least one arm")
        .With(kPayloadPointer, "#/arms");
  }
  if (s.arms.size() > 1000) {
    return InvalidArgumentError("at most 1000 arms").With(kPayloadPointer, "#/arms");
  }
  std::vector<std::string_view> names;
  for (size_t i = 0; i < s.arms.size(); ++i) {
    const ArmSpec& a = s.arms[i];
    const std::string pointer = "#/arms/" + std::to_string(i) + "/name";
    if (a.name.empty() || a.name.size() > 64 ||
        std::any_of(a.name.begin(), a.name.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
      return InvalidArgumentError("arm names must be 1..64 characters without controls")
          .With(kPayloadPointer, pointer);
    }
    if (std::find(names.begin(), names.end(), a.name) != names.end()) {
      return InvalidArgumentError("duplicate arm name \"" + a.name + "\"")
          .With(kPayloadPointer, pointer);
    }
    names.push_back(a.name);
    if (a.payload.dump().size() > size_t{16} * 1024) {
      return InvalidArgumentError("an arm payload may hold at most 16 KiB of JSON")
          .With(kPayloadPointer, "#/arms/" + std::to_string(i) + "/payload");
    }
  }
  if (std::all_of(s.arms.begin(), s.arms.end(), [](const ArmSpec& a) { return a.retired; })) {
    return InvalidArgumentError("at least one arm must be active").With(kPayloadPointer, "#/arms");
  }
  if (Status st = Validate(s.policy); !st.ok()) {
    return Status(st.code(), "policy: " + std::string(st.message()))
        .With(kPayloadPointer, "#/policy");
  }
  if (s.attribution_window_s < 1 || s.attribution_window_s > int64_t{30} * 86400) {
    return InvalidArgumentError("attributionWindowSeconds must be 1..2592000")
        .With(kPayloadPointer, "#/attributionWindowSeconds");
  }
  if (!(s.min_traffic >= 0) || s.min_traffic * static_cast<double>(s.arms.size()) > 1) {
    return InvalidArgumentError("minTraffic must be >= 0 and at most 1 / number of arms")
        .With(kPayloadPointer, "#/minTraffic");
  }
  if (!(s.stop_probability == 0 || (s.stop_probability >= 0.5 && s.stop_probability <= 1))) {
    return InvalidArgumentError("stopRule.probabilityBest must be 0 (never) or 0.5..1")
        .With(kPayloadPointer, "#/stopRule/probabilityBest");
  }
  if (s.stop_min_pulls < 0) {
    return InvalidArgumentError("stopRule.minPulls must be >= 0")
        .With(kPayloadPointer, "#/stopRule/minPulls");
  }
  return OkStatus();
}

nlohmann::json ToJson(const ExperimentSpec& s) {
  nlohmann::json arms = nlohmann::json::array();
  for (const ArmSpec& a : s.arms) {
    arms.push_back({{"name", a.name}, {"payload", a.payload}, {"retired", a.retired}});
  }
  nlohmann::json policy = {{"type", PolicyTypeName(s.policy.type)}};
  switch (s.policy.type) {
    case PolicyType::kEpsilonGreedy:
      policy["epsilon"] = s.policy.epsilon;
      break;
    case PolicyType::kSoftmax:
      policy["temperature"] = s.policy.temperature;
      break;
    case PolicyType::kExp3:
      policy["gamma"] = s.policy.gamma;
      break;
    case PolicyType::kDiscountedThompson:
      policy["discount"] = s.policy.discount;
      break;
    case PolicyType::kSlidingWindowThompson:
      policy["window"] = s.policy.window;
      break;
    default:
      break;
  }
  nlohmann::json j = {
      {"name", s.name},
      {"arms", std::move(arms)},
      {"policy", std::move(policy)},
      {"rewardType", s.reward_type == RewardType::kBernoulli ? "bernoulli" : "real"},
      {"attributionWindowSeconds", s.attribution_window_s},
      {"minTraffic", s.min_traffic},
      {"stopRule", {{"probabilityBest", s.stop_probability}, {"minPulls", s.stop_min_pulls}}},
      {"createTime", s.created_at},
      {"updateTime", s.updated_at}};
  j["winner"] = s.winner ? nlohmann::json(*s.winner) : nlohmann::json(nullptr);
  return j;
}

StatusOr<ExperimentSpec> ParseSpec(const nlohmann::json& body) {
  using nlohmann::json;
  const auto bad = [](const std::string& pointer, const std::string& message) {
    return InvalidArgumentError(message)
        .With(kPayloadReason, "INVALID_FIELD")
        .With(kPayloadPointer, pointer);
  };
  if (!body.is_object()) {
    return bad("#", "the body must be a JSON object");
  }
  ExperimentSpec s;
  const auto name = body.find("name");
  if (name == body.end() || !name->is_string()) {
    return bad("#/name", "name is required and must be a string");
  }
  s.name = name->get<std::string>();
  const auto arms = body.find("arms");
  if (arms == body.end() || !arms->is_array()) {
    return bad("#/arms", "arms is required and must be an array of {\"name\", \"payload\"?}");
  }
  for (size_t i = 0; i < arms->size(); ++i) {
    const json& a = (*arms)[i];
    const std::string pointer = "#/arms/" + std::to_string(i);
    if (!a.is_object()) {
      return bad(pointer, "each arm must be an object with a name");
    }
    const auto arm_name = a.find("name");
    if (arm_name == a.end() || !arm_name->is_string()) {
      return bad(pointer + "/name", "each arm needs a string name");
    }
    ArmSpec arm;
    arm.name = arm_name->get<std::string>();
    if (const auto payload = a.find("payload"); payload != a.end()) {
      arm.payload = *payload;
    }
    if (const auto retired = a.find("retired"); retired != a.end() && !retired->is_null()) {
      if (!retired->is_boolean()) {
        return bad(pointer + "/retired", "retired must be true or false");
      }
      arm.retired = retired->get<bool>();
    }
    s.arms.push_back(std::move(arm));
  }
  if (const auto policy = body.find("policy"); policy != body.end() && !policy->is_null()) {
    if (!policy->is_object()) {
      return bad("#/policy", "policy must be an object with a type");
    }
    if (const auto type = policy->find("type"); type != policy->end()) {
      if (!type->is_string()) {
        return bad("#/policy/type", "policy.type must be a string");
      }
      auto parsed = ParsePolicyType(type->get<std::string>());
      if (!parsed.ok()) {
        return bad("#/policy/type", std::string(parsed.status().message()));
      }
      s.policy.type = *parsed;
    }
    const auto number = [&](const char* key, double& out) -> Status {
      const auto it = policy->find(key);
      if (it == policy->end() || it->is_null()) {
        return OkStatus();
      }
      if (!it->is_number()) {
        return bad(std::string("#/policy/") + key,
                   std::string("policy.") + key + " must be a number");
      }
      out = it->get<double>();
      return OkStatus();
    };
    EVO_RETURN_IF_ERROR(number("epsilon", s.policy.epsilon));
    EVO_RETURN_IF_ERROR(number("temperature", s.policy.temperature));
    EVO_RETURN_IF_ERROR(number("gamma", s.policy.gamma));
    EVO_RETURN_IF_ERROR(number("discount", s.policy.discount));
    if (const auto it = policy->find("window"); it != policy->end() && !it->is_null()) {
      if (!it->is_number_integer()) {
        return bad("#/policy/window", "policy.window must be an integer");
      }
      s.policy.window = it->get<int64_t>();
    }
  }
  if (const auto type = body.find("rewardType"); type != body.end() && !type->is_null()) {
    if (!type->is_string() || (*type != "bernoulli" && *type != "real")) {
      return bad("#/rewardType", "rewardType must be \"bernoulli\" or \"real\"");
    }
    s.reward_type = *type == "real" ? RewardType::kReal : RewardType::kBernoulli;
  }
  if (const auto w = body.find("attributionWindowSeconds"); w != body.end() && !w->is_null()) {
    if (!w->is_number_integer()) {
      return bad("#/attributionWindowSeconds", "attributionWindowSeconds must be an integer");
    }
    s.attribution_window_s = w->get<int64_t>();
  }
  if (const auto m = body.find("minTraffic"); m != body.end() && !m->is_null()) {
    if (!m->is_number()) {
      return bad("#/minTraffic", "minTraffic must be a number");
    }
    s.min_traffic = m->get<double>();
  }
  if (const auto stop = body.find("stopRule"); stop != body.end() && !stop->is_null()) {
    if (!stop->is_object()) {
      return bad("#/stopRule", "stopRule must be an object");
    }
    if (const auto p = stop->find("probabilityBest"); p != stop->end() && !p->is_null()) {
      if (!p->is_number()) {
        return bad("#/stopRule/probabilityBest", "stopRule.probabilityBest must be a number");
      }
      s.stop_probability = p->get<double>();
    }
    if (const auto p = stop->find("minPulls"); p != stop->end() && !p->is_null()) {
      if (!p->is_number_integer()) {
        return bad("#/stopRule/minPulls", "stopRule.minPulls must be an integer");
      }
      s.stop_min_pulls = p->get<int64_t>();
    }
  }
  EVO_RETURN_IF_ERROR(Validate(s));
  return s;
}

StatusOr<SyncMode> ParseSyncMode(std::string_view text) {
  if (text == "none") {
    return SyncMode::kNone;
  }
  if (text == "interval") {
    return SyncMode::kInterval;
  }
  if (text == "always") {
    return SyncMode::kAlways;
  }
  return InvalidArgumentError("sync must be none, interval or always, not \"" + std::string(text) +
                              "\"");
}

Status Validate(const ServiceOptions& o) {
  if (o.snapshot_interval.count() < 1) {
    return InvalidArgumentError("snapshot_interval must be at least 1 ms");
  }
  if (o.snapshot_retry.count() < 1) {
    return InvalidArgumentError("snapshot_retry must be at least 1 ms");
  }
  if (o.sync_interval.count() < 1) {
    return InvalidArgumentError("sync_interval must be at least 1 ms");
  }
  if (o.max_sticky_units < 1) {
    return InvalidArgumentError("max_sticky_units must be at least 1");
  }
  if (o.max_pending_pulls < 1) {
    return InvalidArgumentError("max_pending_pulls must be at least 1");
  }
  if (o.journal_bytes < Journal::kRecordBytes * 1024) {
    return InvalidArgumentError("journal_bytes must be at least 32 KiB");
  }
  if (o.probability_samples < 1) {
    return InvalidArgumentError("probability_samples must be at least 1");
  }
  return OkStatus();
}

namespace {

// The stored form: the API form plus output-only fields. A row is data from disk: it is read
// with checks, never with a throwing accessor.
StatusOr<ExperimentSpec> SpecFromStoredJson(const nlohmann::json& j) {
  EVO_ASSIGN_OR_RETURN(ExperimentSpec s, ParseSpec(j));
  const auto text = [&j](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  s.created_at = text("createTime");
  s.updated_at = text("updateTime");
  if (const auto w = j.find("winner"); w != j.end() && w->is_string()) {
    s.winner = w->get<std::string>();
  }
  return s;
}

std::string ErrnoText() { return std::strerror(errno); }

// Writes all of `data`; false with errno set otherwise.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        errno = EIO;
      }
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Runs `fn` (returning Status), turning an exception into Internal, logged: the boundary of
// the work the server's main loop hands to this module.
template <typename F>
Status Guarded(std::string_view what, F&& fn) {
  try {
    return fn();
  } catch (const std::exception& ex) {
    spdlog::error("bandit: {}: {}", what, ex.what());
    return InternalError("bandit " + std::string(what) + ": " + ex.what());
  } catch (...) {
    spdlog::error("bandit: {}: unknown exception", what);
    return InternalError("bandit " + std::string(what) + ": unknown exception");
  }
}

}  // namespace

// ---- service -----------------------------------------------------------------------------

struct Service::Impl {
  store::Database& db;
  std::filesystem::path dir;
  ServiceOptions options;
  const Clock& clock;

  // Serialises definition changes (Create, Update, Delete, a stop rule's winner) and their
  // durable store writes. Taken before registry_mu or an experiment's mu, never after.
  std::mutex defs_mu;
  mutable std::shared_mutex registry_mu;  // guards the maps (not the experiments)
  std::map<std::string, std::shared_ptr<Experiment>, std::less<>> by_name;
  std::unordered_map<uint32_t, std::shared_ptr<Experiment>> by_uid;

  // One snapshot at a time; guards what follows.
  mutable std::mutex snapshot_mu;
  // The current journal: replaced by a snapshot under snapshot_mu and registry_mu (shared),
  // so it may be read under either snapshot_mu or registry_mu.
  std::shared_ptr<Journal> journal;
  uint64_t generation = 0;
  int64_t next_snapshot_ms = 0;  // when the next snapshot is due
  int64_t retry_ms = 0;          // backoff after failed snapshots; 0 after a success
  Status snapshot_error;         // the last snapshot's failure, until one succeeds
  int64_t last_sync_ms = 0;      // kInterval

  std::atomic<uint64_t> journal_syncs{0};
  std::atomic<uint64_t> snapshots{0};
  std::atomic<uint64_t> snapshot_failures{0};

  mutable std::mutex seed_mu;
  uint64_t seed_counter = 0;

  // Recovery only (Open's thread).
  uint64_t max_uid_seen = 0;
  uint64_t skipped_unknown = 0;  // records of experiments deleted since
  uint64_t skipped_invalid = 0;  // records whose content does not fit their experiment

  Impl(store::Database& d, std::filesystem::path p, const ServiceOptions& o, const Clock& c)
      : db(d), dir(std::move(p)), options(o), clock(c) {}

  int64_t NowMs() const { return UnixMillis(clock.Now()); }

  uint64_t NextSeed() {
    std::lock_guard lock(seed_mu);
    const uint64_t base = options.seed != 0 ? options.seed : static_cast<uint64_t>(NowMs());
    return base + 0x9e3779b97f4a7c15ULL * ++seed_counter;
  }

  std::filesystem::path JournalPath(uint64_t gen) const {
    return dir / ("journal-" + std::to_string(gen) + ".log");
  }
  std::filesystem::path SnapshotPath() const { return dir / "snapshot.bin"; }

  // The generations of the journal files in `dir`, ascending.
  std::vector<uint64_t> JournalGenerations() const {
    std::vector<uint64_t> gens;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string f = entry.path().filename().string();
      if (f.starts_with("journal-") && f.ends_with(".log") && f.size() > 12 && f.size() <= 32) {
        const std::string digits = f.substr(8, f.size() - 12);
        if (std::all_of(digits.begin(), digits.end(),
                        [](char c) { return c >= '0' && c <= '9'; })) {
          gens.push_back(std::stoull(digits));
        }
      }
    }
    std::sort(gens.begin(), gens.end());
    return gens;
  }

  std::shared_ptr<Experiment> Find(std::string_view name) const {
    std::shared_lock lock(registry_mu);
    const auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }

  std::vector<std::shared_ptr<Experiment>> All() const {
    std::shared_lock lock(registry_mu);
    std::vector<std::shared_ptr<Experiment>> all;
    all.reserve(by_uid.size());
    for (const auto& [uid, e] : by_uid) {
      all.push_back(e);
    }
    return all;
  }

  std::shared_ptr<Journal> CurrentJournal() const {
    std::lock_guard lock(snapshot_mu);
    return journal;
  }

  static Status NoExperiment(std::string_view name) {
    return NotFoundError("no experiment named \"" + std::string(name) + "\"")
        .With(kPayloadReason, "UNKNOWN_EXPERIMENT");
  }

  std::shared_ptr<Experiment> MakeExperiment(uint32_t uid, ExperimentSpec spec) {
    auto e = std::make_shared<Experiment>(options.max_sticky_units);
    e->uid = uid;
    e->policy = Policy::Create(spec.policy, spec.reward_type, 0);
    e->rng = Rng(NextSeed());
    e->spec = std::make_shared<const ExperimentSpec>(std::move(spec));
    e->SyncArms();
    return e;
  }

  Status SyncJournal(Journal& j) {
    journal_syncs.fetch_add(1, std::memory_order_relaxed);
    return j.Sync();
  }

  // Expiry work done under an experiment's lock at a time. All the pulls of one second expire
  // together (135,000 under bench/bandit.sh: ~15 ms of journal records and policy updates, a
  // stall for every request queued on the lock), so a request takes a few, which keeps up
  // with any pull rate, and Tick takes the rest in slices, releasing the lock in between.
  static constexpr uint64_t kRequestExpirySteps = 64;
  static constexpr uint64_t kTickExpirySteps = 4096;

  // Journals the expiry of pull `seq` and feeds 0 to the policy; false when the journal
  // refused it (the pull stays pending). REQUIRES: e.mu.
  static bool ExpireOne(Experiment& e, Journal& j, uint64_t seq, uint16_t arm) {
    if (!j.Append({RecordType::kExpire, e.uid, arm, seq, 0}).ok()) {
      return false;
    }
    e.policy->Update(arm, 0);
    ++e.expired[arm];
    return true;
  }

  // Expires due pulls of `e`, oldest first, looking at `max_steps` entries at most
  // (journalled first; a full journal leaves them pending until the next snapshot). Returns
  // true when due pulls may be left. REQUIRES: e.mu.
  static bool ExpireDue(Experiment& e, int64_t now_ms, Journal& j, uint64_t max_steps) {
    return e.pending.Expire(
        now_ms / 1000, [&](uint64_t seq, uint16_t arm) { return ExpireOne(e, j, seq, arm); },
        max_steps);
  }

  // ExpireDue, then purges as many entries at most. Returns true when work may be left.
  // REQUIRES: e.mu.
  static bool ExpireLocked(Experiment& e, int64_t now_ms, Journal& j, uint64_t max_steps) {
    const bool more = ExpireDue(e, now_ms, j, max_steps);
    return e.pending.Purge(now_ms / 1000, e.spec->attribution_window_s, max_steps) || more;
  }

  // Makes room for one more pull when the ring holds max_pending_pulls: the oldest pulls
  // expire now (journalled, 0 for the policy) and are dropped. O(1) a pull at the cap.
  // REQUIRES: e.mu.
  void CapPending(Experiment& e, Journal& j) const {
    if (e.pending.size() < options.max_pending_pulls) {
      return;
    }
    const uint64_t end = e.pending.next_seq() - options.max_pending_pulls + 1;
    e.pending.ExpireBefore(end,
                           [&](uint64_t seq, uint16_t arm) { return ExpireOne(e, j, seq, arm); });
    e.pending.DropBefore(end);
  }

  // Applies one journal record during recovery; records of deleted experiments and records
  // that do not fit their experiment are counted and skipped.
  void ApplyRecord(const Record& r) {
    max_uid_seen = std::max<uint64_t>(max_uid_seen, r.experiment);
    const auto it = by_uid.find(r.experiment);
    if (it == by_uid.end()) {
      ++skipped_unknown;  // deleted since
      return;
    }
    Experiment& e = *it->second;
    const bool fits =
        r.arm < e.spec->arms.size() && std::isfinite(r.value) &&
        (r.type != RecordType::kPull || std::abs(r.value) < 1e15) &&
        ((r.type != RecordType::kReward && r.type != RecordType::kLateReward) ||
         e.spec->reward_type != RewardType::kBernoulli || r.value == 0 || r.value == 1);
    if (!fits) {
      ++skipped_invalid;
      return;
    }
    switch (r.type) {
      case RecordType::kPull:
        e.pending.Restore(r.seq, r.arm, static_cast<int64_t>(r.value), PullState::kPending);
        ++e.pulls[r.arm];
        break;
      case RecordType::kAssign:
        e.sticky.Set(r.seq, r.arm);
        break;
      case RecordType::kReward:
      case RecordType::kLateReward:
      case RecordType::kExpire: {
        PendingIndex::Entry* entry = e.pending.Find(r.seq);
        if (r.type == RecordType::kExpire) {
          e.policy->Update(r.arm, 0);
          ++e.expired[r.arm];
          if (entry != nullptr) {
            entry->state = PullState::kExpired;
          }
          e.pending.SetCursorAtLeast(r.seq + 1);
        } else {
          if (r.type == RecordType::kReward) {
            e.policy->Update(r.arm, r.value);
          }
          ++e.rewards[r.arm];
          e.reward_sum[r.arm] += r.value;
          if (entry != nullptr) {
            entry->state =
                r.type == RecordType::kReward ? PullState::kRewarded : PullState::kLateRewarded;
          }
        }
        break;
      }
    }
  }

  // An experiment's snapshot: `head` and `tail` are written under its lock; the pending ring
  // and the sticky units (the large parts) are captured there copy-on-write and serialised
  // after the lock.
  struct Captured {
    std::string head;
    PendingIndex::Captured ring;
    StickyUnits::Captured sticky;
    std::string tail;
  };
  static Captured CaptureExperiment(const Experiment& e) {
    Captured c;
    std::string& out = c.head;
    PutRaw(out, e.uid);
    std::string policy;
    e.policy->Serialize(policy);
    PutRaw(out, static_cast<uint64_t>(policy.size()));
    out += policy;
    const auto n = static_cast<uint64_t>(e.pulls.size());
    PutRaw(out, n);
    for (size_t i = 0; i < n; ++i) {
      PutRaw(out, e.pulls[i]);
      PutRaw(out, e.rewards[i]);
      PutRaw(out, e.expired[i]);
      PutRaw(out, e.reward_sum[i]);
    }
    c.ring = e.pending.Capture();
    c.sticky = e.sticky.Capture();
    PutRaw(c.tail, e.winner);
    return c;
  }

  Status DeserializeExperiment(std::string_view& in, uint32_t ring_format) {
    const auto truncated = [](std::string_view what) {
      return DataLossError("truncated or malformed " + std::string(what));
    };
    uint32_t uid = 0;
    uint64_t policy_size = 0;
    if (!GetRaw(in, uid) || !GetRaw(in, policy_size) || policy_size > in.size()) {
      return truncated("experiment header");
    }
    max_uid_seen = std::max<uint64_t>(max_uid_seen, uid);
    auto policy = Policy::Deserialize(in.substr(0, policy_size));
    in.remove_prefix(policy_size);
    if (!policy.ok()) {
      return DataLossError("experiment uid " + std::to_string(uid) +
                           ": policy: " + std::string(policy.status().message()));
    }
    uint64_t n = 0;
    if (!GetRaw(in, n) || n > 100000) {
      return truncated("arm count");
    }
    std::vector<int64_t> pulls(n), rewards(n), expired(n);
    std::vector<double> sums(n);
    for (size_t i = 0; i < n; ++i) {
      if (!GetRaw(in, pulls[i]) || !GetRaw(in, rewards[i]) || !GetRaw(in, expired[i]) ||
          !GetRaw(in, sums[i])) {
        return truncated("arm counters");
      }
    }
    PendingIndex pending;
    if (!pending.Deserialize(in, ring_format)) {
      return truncated("pending pulls");
    }
    uint64_t sticky_n = 0;
    if (!GetRaw(in, sticky_n) || sticky_n > in.size() / 10) {
      return truncated("sticky units");
    }
    StickyUnits sticky(options.max_sticky_units);
    uint16_t max_sticky_arm = 0;
    for (size_t i = 0; i < sticky_n; ++i) {
      uint64_t unit = 0;
      uint16_t arm = 0;
      if (!GetRaw(in, unit) || !GetRaw(in, arm)) {
        return truncated("sticky units");
      }
      max_sticky_arm = std::max(max_sticky_arm, arm);
      sticky.Set(unit, arm);
    }
    int64_t winner = -1;
    if (!GetRaw(in, winner)) {
      return truncated("winner");
    }
    const auto it = by_uid.find(uid);
    if (it == by_uid.end()) {
      return OkStatus();  // deleted since
    }
    Experiment& e = *it->second;
    // Arms are only ever appended: the snapshot may know fewer than the stored spec, never
    // more, and everything it indexes must be one of them.
    const size_t arms = e.spec->arms.size();
    if (n > arms || (*policy)->arms() != n || (*policy)->options().type != e.spec->policy.type ||
        (*policy)->reward_type() != e.spec->reward_type || winner < -1 ||
        winner >= static_cast<int64_t>(n) || (sticky_n > 0 && max_sticky_arm >= n) ||
        !pending.AllArmsBelow(n)) {
      return DataLossError("experiment uid " + std::to_string(uid) + " (\"" + e.spec->name +
                           "\") does not fit its stored definition");
    }
    e.policy = std::move(*policy);
    e.pulls = std::move(pulls);
    e.rewards = std::move(rewards);
    e.expired = std::move(expired);
    e.reward_sum = std::move(sums);
    e.pending = std::move(pending);
    e.sticky = std::move(sticky);
    e.winner = winner;
    e.SyncArms();
    return OkStatus();
  }

  // Reads the snapshot (none: generation 0). DataLoss naming the file when it is corrupt.
  Status LoadSnapshot(uint64_t& generation_out) {
    generation_out = 0;
    std::ifstream in(SnapshotPath(), std::ios::binary);
    if (!in) {
      return OkStatus();
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
      return DataLossError("cannot read it");
    }
    std::string_view v(bytes);
    uint64_t magic = 0;
    uint64_t gen = 0;
    uint64_t count = 0;
    if (!GetRaw(v, magic) || (magic != kSnapshotMagic && magic != kSnapshotMagicV1) ||
        !GetRaw(v, gen) || !GetRaw(v, count)) {
      return DataLossError("not a bandit snapshot");
    }
    const uint32_t ring_format =
        magic == kSnapshotMagic ? PendingIndex::kFormat : PendingIndex::kFormatV1;
    for (uint64_t i = 0; i < count; ++i) {
      EVO_RETURN_IF_ERROR(DeserializeExperiment(v, ring_format));
    }
    if (!v.empty()) {
      return DataLossError(std::to_string(v.size()) + " bytes after the last experiment");
    }
    generation_out = gen;
    return OkStatus();
  }

  // Takes a snapshot and schedules the next one: after `snapshot_interval`, or after a
  // backoff when it failed (every journal kept). REQUIRES: snapshot_mu.
  Status SnapshotLocked() {
    const int64_t now_ms = NowMs();
    Status st = Guarded("snapshot", [&] { return WriteSnapshot(); });
    if (st.ok()) {
      snapshots.fetch_add(1, std::memory_order_relaxed);
      retry_ms = 0;
      next_snapshot_ms = now_ms + options.snapshot_interval.count();
      snapshot_error = OkStatus();
      return st;
    }
    snapshot_failures.fetch_add(1, std::memory_order_relaxed);
    retry_ms = retry_ms == 0 ? options.snapshot_retry.count()
                             : std::min(2 * retry_ms, options.snapshot_interval.count());
    next_snapshot_ms = now_ms + retry_ms;
    spdlog::error("bandit: {} (every journal is kept; next attempt in {} ms)", st.ToString(),
                  retry_ms);
    snapshot_error = st;
    return st;
  }

  Status SnapshotNow() {
    std::lock_guard snapshot_lock(snapshot_mu);
    return SnapshotLocked();
  }

  // Captures each experiment under its own lock and, in the same critical section, points
  // it at the next journal: every record of an experiment is then either in the snapshot or
  // in the next journal. Only one experiment is held at a time, briefly. Then writes the
  // snapshot durably (write, fsync, rename, fsync of the directory) and only then removes
  // the journals it covers; any failure keeps them all. REQUIRES: snapshot_mu.
  Status WriteSnapshot() {
    const uint64_t next_gen = generation + 1;
    EVO_ASSIGN_OR_RETURN(std::unique_ptr<Journal> opened,
                         Journal::Open(JournalPath(next_gen), options.journal_bytes));
    std::shared_ptr<Journal> next(std::move(opened));
    // No experiment is created or deleted meanwhile (Create and Delete change the maps with
    // registry_mu held exclusively); a created one starts on `journal`, switched below.
    std::shared_lock registry_lock(registry_mu);
    std::vector<std::shared_ptr<Experiment>> all;
    all.reserve(by_uid.size());
    for (const auto& [uid, e] : by_uid) {
      all.push_back(e);
    }
    std::string out;
    PutRaw(out, kSnapshotMagic);
    PutRaw(out, next_gen);
    PutRaw(out, static_cast<uint64_t>(all.size()));
    std::vector<Captured> captured;
    captured.reserve(all.size());
    for (const auto& e : all) {
      std::lock_guard lock(e->mu);
      captured.push_back(CaptureExperiment(*e));
      e->journal = next;
    }
    std::shared_ptr<Journal> old = std::move(journal);
    journal = next;
    generation = next_gen;
    registry_lock.unlock();
    if (old != nullptr && options.sync != SyncMode::kNone) {
      // Its last records are in this snapshot, but if the snapshot fails they are only there.
      if (Status st = SyncJournal(*old); !st.ok()) {
        spdlog::warn("bandit: {}", st.ToString());
      }
    }
    old.reset();
    // The large part, outside every lock: pulls go on meanwhile (copying a chunk they
    // write). Streamed to the file a piece at a time, so memory stays flat.
    const std::filesystem::path tmp = dir / "snapshot.tmp";
    const auto fail = [&](const std::string& step, int fd) {
      const std::string error = ErrnoText();
      if (fd >= 0) {
        ::close(fd);
      }
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      return UnavailableError("bandit snapshot: " + step + ": " + error);
    };
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return fail("open " + tmp.string(), -1);
    }
    bool ok = WriteAll(fd, out);
    for (Captured& c : captured) {
      const auto write = [&](std::string_view piece) { ok = ok && WriteAll(fd, piece); };
      write(c.head);
      PendingIndex::Serialize(c.ring, write);
      StickyUnits::Serialize(c.sticky, write);
      write(c.tail);
      c = Captured();
      if (!ok) {
        break;
      }
    }
    if (!ok) {
      return fail("write " + tmp.string(), fd);
    }
    if (::fsync(fd) != 0) {
      return fail("fsync " + tmp.string(), fd);
    }
    if (::close(fd) != 0) {
      return fail("close " + tmp.string(), -1);
    }
    if (::rename(tmp.c_str(), SnapshotPath().c_str()) != 0) {
      return fail("rename to " + SnapshotPath().string(), -1);
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
      const std::string error = ErrnoText();
      if (dfd >= 0) {
        ::close(dfd);
      }
      return UnavailableError("bandit snapshot: fsync of " + dir.string() + ": " + error);
    }
    ::close(dfd);
    // Durable: the journals before next_gen are covered.
    for (const uint64_t g : JournalGenerations()) {
      if (g < next_gen) {
        std::error_code ec;
        std::filesystem::remove(JournalPath(g), ec);
        if (ec) {
          spdlog::warn("bandit: removing {}: {}", JournalPath(g).string(), ec.message());
        }
      }
    }
    return OkStatus();
  }

  StatusOr<ExperimentStats> StatsOf(Experiment& e) const {
    ExperimentStats out;
    std::unique_ptr<Policy> copy;
    std::vector<uint8_t> active;
    uint64_t seed = 0;
    {
      std::lock_guard lock(e.mu);
      const ExperimentSpec& spec = *e.spec;
      std::string state;
      e.policy->Serialize(state);
      auto restored = Policy::Deserialize(state);
      if (!restored.ok()) {
        return restored.status();
      }
      copy = std::move(*restored);
      active = e.active;
      for (size_t i = 0; i < spec.arms.size(); ++i) {
        ArmStats a;
        a.name = spec.arms[i].name;
        a.retired = spec.arms[i].retired;
        a.pulls = e.pulls[i];
        a.rewards = e.rewards[i];
        a.expired = e.expired[i];
        a.reward_sum = e.reward_sum[i];
        out.arms.push_back(std::move(a));
        out.pulls += e.pulls[i];
      }
      out.pending = static_cast<int64_t>(e.pending.next_seq() - e.pending.cursor());
      out.sticky_units = static_cast<int64_t>(e.sticky.size());
      if (e.winner >= 0) {
        out.winner = spec.arms[static_cast<size_t>(e.winner)].name;
      }
      seed = e.rng.Next();
    }
    // Posterior summaries and Monte Carlo outside the experiment's lock.
    Rng rng(seed);
    const int samples = options.probability_samples;
    const std::vector<double> best = ProbabilityBest(*copy, active, samples, rng);
    double best_mean = 0;
    bool any = false;
    for (size_t i = 0; i < out.arms.size(); ++i) {
      const ArmEstimate est = copy->Estimate(i);
      out.arms[i].mean = est.mean;
      out.arms[i].ci_low = est.lo;
      out.arms[i].ci_high = est.hi;
      out.arms[i].probability_best = i < best.size() ? best[i] : 0;
      if (active[i] && (!any || est.mean > best_mean)) {
        best_mean = est.mean;
        any = true;
      }
    }
    for (const ArmStats& a : out.arms) {
      out.regret_estimate += static_cast<double>(a.pulls) * std::max(0.0, best_mean - a.mean);
    }
    out.probability_samples = samples;
    out.probability_error = 1.96 * std::sqrt(0.25 / samples);
    return out;
  }

  // Records arm `arm` as the winner of `e`: the store first (durably), then memory.
  Status SetWinner(Experiment& e, size_t arm) {
    std::lock_guard defs(defs_mu);
    {
      std::shared_lock lock(registry_mu);
      const auto it = by_uid.find(e.uid);
      if (it == by_uid.end() || it->second.get() != &e) {
        return OkStatus();  // deleted meanwhile
      }
    }
    std::shared_ptr<const ExperimentSpec> cur;
    {
      std::lock_guard lock(e.mu);
      if (e.winner >= 0) {
        return OkStatus();
      }
      cur = e.spec;
    }
    if (arm >= cur->arms.size()) {
      return OkStatus();
    }
    auto next = std::make_shared<ExperimentSpec>(*cur);
    next->winner = cur->arms[arm].name;
    EVO_RETURN_IF_ERROR(db.Transaction(
        [&](store::Executor& tx) -> Status {
          return tx
              .Exec("UPDATE bandit_experiments SET spec = ? WHERE uid = ?",
                    {ToJson(*next).dump(), static_cast<int64_t>(e.uid)})
              .status();
        },
        store::TxMode::kDurable));
    std::lock_guard lock(e.mu);
    e.spec = std::move(next);
    e.winner = static_cast<int64_t>(arm);
    return OkStatus();
  }

  // Expiry and the stop rule of one experiment.
  Status TickExperiment(Experiment& e, int64_t now_ms) {
    std::shared_ptr<const ExperimentSpec> spec;
    bool check_stop = false;
    for (bool more = true; more;) {
      std::lock_guard lock(e.mu);
      more = ExpireLocked(e, now_ms, *e.journal, kTickExpirySteps);
      spec = e.spec;
      check_stop = e.winner < 0 && spec->stop_probability > 0;
    }
    if (!check_stop) {
      return OkStatus();
    }
    EVO_ASSIGN_OR_RETURN(const ExperimentStats stats, StatsOf(e));
    if (stats.pulls < spec->stop_min_pulls) {
      return OkStatus();
    }
    for (size_t i = 0; i < stats.arms.size(); ++i) {
      if (stats.arms[i].probability_best >= spec->stop_probability) {
        return SetWinner(e, i);
      }
    }
    return OkStatus();
  }

  Status TickNow() {
    const int64_t now_ms = NowMs();
    Status result;
    for (const auto& e : All()) {
      // One experiment's failure does not hold up the others, nor the snapshot.
      Status st = Guarded("tick", [&] { return TickExperiment(*e, now_ms); });
      if (!st.ok() && result.ok()) {
        result = st;
      }
    }
    std::unique_lock snapshot_lock(snapshot_mu);
    if (options.sync == SyncMode::kInterval &&
        now_ms - last_sync_ms >= options.sync_interval.count()) {
      last_sync_ms = now_ms;
      std::shared_ptr<Journal> current = journal;
      snapshot_lock.unlock();
      if (Status st = SyncJournal(*current); !st.ok()) {
        spdlog::error("bandit: {}", st.ToString());
        if (result.ok()) {
          result = st;
        }
      }
      snapshot_lock.lock();
    }
    // Snapshot on time, or early when the journal is an eighth full (it never fills up, and
    // its resident pages stay bounded), unless failed snapshots are backing off.
    const bool eighth_full = journal->used() * 8 >= journal->capacity();
    if (now_ms >= next_snapshot_ms || (eighth_full && retry_ms == 0)) {
      (void)SnapshotLocked();
    }
    // Until a snapshot succeeds, Tick reports its failure (the server's readiness shows it).
    return !snapshot_error.ok() ? snapshot_error : result;
  }

  StatusOr<ExperimentSpec> SpecFromRow(const store::Row& row, uint32_t& uid) const {
    EVO_ASSIGN_OR_RETURN(int64_t u, store::AsInt64(row[1]));
    if (u < 1 || u > int64_t{UINT32_MAX}) {
      return DataLossError("uid " + std::to_string(u) + " out of range");
    }
    EVO_ASSIGN_OR_RETURN(std::string text, store::AsText(row[2]));
    uid = static_cast<uint32_t>(u);
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
      return DataLossError("spec is not JSON");
    }
    return SpecFromStoredJson(j);
  }
};

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Service::~Service() = default;

StatusOr<std::unique_ptr<Service>> Service::Open(store::Database& db,
                                                 const std::filesystem::path& dir,
                                                 const ServiceOptions& options,
                                                 const Clock& clock) {
  EVO_RETURN_IF_ERROR(Validate(options));
  EVO_RETURN_IF_ERROR(db.Migrate("bandit", Migrations()));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return FailedPreconditionError("bandit: " + dir.string() + ": " + ec.message());
  }
  auto impl = std::make_unique<Impl>(db, dir, options, clock);
  EVO_ASSIGN_OR_RETURN(store::Rows rows,
                       db.Query("SELECT name, uid, spec FROM bandit_experiments ORDER BY uid"));
  for (const store::Row& row : rows.rows) {
    uint32_t uid = 0;
    auto spec = impl->SpecFromRow(row, uid);
    if (!spec.ok()) {
      const auto name = store::AsText(row[0]);
      return DataLossError(
          "bandit: experiment \"" + (name.ok() ? *name : std::string("?")) +
          "\" in table bandit_experiments cannot be read (" + std::string(spec.status().message()) +
          "); evo will not start on it: repair or delete that row of " + "the database");
    }
    impl->max_uid_seen = std::max<uint64_t>(impl->max_uid_seen, uid);
    auto e = impl->MakeExperiment(uid, std::move(*spec));
    impl->by_name[e->spec->name] = e;
    impl->by_uid[uid] = e;
  }
  // Recovery: the snapshot, then every journal from its generation on, in order.
  uint64_t gen = 0;
  if (Status st = impl->LoadSnapshot(gen); !st.ok()) {
    return DataLossError("bandit: snapshot " + impl->SnapshotPath().string() + " is corrupt (" +
                         std::string(st.message()) +
                         "); evo will not start on it. Moving it aside starts from the "
                         "journals alone, which lose what the snapshot held");
  }
  uint64_t last = gen;
  for (const uint64_t g : impl->JournalGenerations()) {
    if (g >= gen) {
      EVO_RETURN_IF_ERROR(
          Journal::Replay(impl->JournalPath(g), [&](const Record& r) { impl->ApplyRecord(r); }));
      last = std::max(last, g);
    }
  }
  if (impl->skipped_invalid > 0) {
    spdlog::warn("bandit: skipped {} journal records that do not fit their experiment",
                 impl->skipped_invalid);
  }
  if (impl->skipped_unknown > 0) {
    spdlog::info("bandit: skipped {} journal records of deleted experiments",
                 impl->skipped_unknown);
  }
  // No uid found on disk is ever given again (a store older than the uid mark, or records
  // of experiments deleted before it existed).
  EVO_ASSIGN_OR_RETURN(store::Row mark,
                       db.QueryOne("SELECT last_uid FROM bandit_uid_mark WHERE id = 1"));
  EVO_ASSIGN_OR_RETURN(const int64_t last_uid, store::AsInt64(mark[0]));
  if (impl->max_uid_seen > static_cast<uint64_t>(last_uid)) {
    EVO_RETURN_IF_ERROR(db.Transaction(
        [&](store::Executor& tx) -> Status {
          return tx
              .Exec("UPDATE bandit_uid_mark SET last_uid = ? WHERE id = 1",
                    {static_cast<int64_t>(impl->max_uid_seen)})
              .status();
        },
        store::TxMode::kDurable));
  }
  for (auto& [uid, e] : impl->by_uid) {
    if (e->pending.size() > options.max_pending_pulls) {
      e->pending.DropBefore(e->pending.next_seq() - options.max_pending_pulls);
    }
  }
  impl->generation = last;
  EVO_ASSIGN_OR_RETURN(std::unique_ptr<Journal> journal,
                       Journal::Open(impl->JournalPath(last), options.journal_bytes));
  impl->journal = std::shared_ptr<Journal>(std::move(journal));
  for (auto& [uid, e] : impl->by_uid) {
    e->journal = impl->journal;
  }
  // Compact right away, so recovery work is not repeated by the next start. A failure is
  // logged and retried by Tick: the journals hold everything meanwhile.
  (void)impl->SnapshotNow();
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

StatusOr<ExperimentSpec> Service::Create(ExperimentSpec spec) {
  EVO_RETURN_IF_ERROR(Validate(spec));
  spec.created_at = FormatTimestamp(impl_->clock.Now());
  spec.updated_at = spec.created_at;
  spec.winner.reset();
  std::lock_guard defs(impl_->defs_mu);
  if (impl_->Find(spec.name) != nullptr) {
    return AlreadyExistsError("experiment \"" + spec.name + "\" exists")
        .With(kPayloadReason, "EXPERIMENT_EXISTS");
  }
  int64_t uid = 0;
  EVO_RETURN_IF_ERROR(impl_->db.Transaction(
      [&](store::Executor& tx) -> Status {
        EVO_RETURN_IF_ERROR(
            tx.Exec("UPDATE bandit_uid_mark SET last_uid = last_uid + 1 WHERE id = 1").status());
        EVO_ASSIGN_OR_RETURN(store::Row row,
                             tx.QueryOne("SELECT last_uid FROM bandit_uid_mark WHERE id = 1"));
        EVO_ASSIGN_OR_RETURN(uid, store::AsInt64(row[0]));
        if (uid < 1 || uid > int64_t{UINT32_MAX}) {
          return ResourceExhaustedError("bandit: every experiment uid has been used");
        }
        return tx
            .Exec(
                "INSERT INTO bandit_experiments(name, uid, spec, created_at, updated_at) "
                "VALUES(?, ?, ?, ?, ?)",
                {spec.name, uid, ToJson(spec).dump(), spec.created_at, spec.updated_at})
            .status();
      },
      store::TxMode::kDurable));
  auto e = impl_->MakeExperiment(static_cast<uint32_t>(uid), spec);
  std::unique_lock lock(impl_->registry_mu);
  e->journal = impl_->journal;
  impl_->by_name[spec.name] = e;
  impl_->by_uid[e->uid] = e;
  return spec;
}

StatusOr<ExperimentSpec> Service::Get(std::string_view name) const {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  std::shared_ptr<const ExperimentSpec> spec;
  {
    std::lock_guard lock(e->mu);
    spec = e->spec;
  }
  return *spec;
}

std::vector<ExperimentSpec> Service::List(std::string_view after, size_t limit) const {
  std::vector<std::shared_ptr<Experiment>> page;
  {
    std::shared_lock lock(impl_->registry_mu);
    for (auto it = impl_->by_name.upper_bound(after);
         it != impl_->by_name.end() && page.size() < limit; ++it) {
      page.push_back(it->second);
    }
  }
  std::vector<ExperimentSpec> out;
  out.reserve(page.size());
  for (const auto& e : page) {
    std::shared_ptr<const ExperimentSpec> spec;
    {
      std::lock_guard lock(e->mu);
      spec = e->spec;
    }
    out.push_back(*spec);
  }
  return out;
}

StatusOr<ExperimentSpec> Service::Update(const ExperimentSpec& next) {
  EVO_RETURN_IF_ERROR(Validate(next));
  std::lock_guard defs(impl_->defs_mu);
  auto e = impl_->Find(next.name);
  if (!e) {
    return Impl::NoExperiment(next.name);
  }
  // Only holders of defs_mu replace the spec: `cur` stays current until the end.
  std::shared_ptr<const ExperimentSpec> current;
  {
    std::lock_guard lock(e->mu);
    current = e->spec;
  }
  const ExperimentSpec& cur = *current;
  if (next.policy.type != cur.policy.type) {
    return InvalidArgumentError("the policy type of an experiment cannot change; create a new one")
        .With(kPayloadPointer, "#/policy/type");
  }
  if (next.policy.window != cur.policy.window &&
      cur.policy.type == PolicyType::kSlidingWindowThompson) {
    return InvalidArgumentError("policy.window cannot change; create a new experiment")
        .With(kPayloadPointer, "#/policy/window");
  }
  if (next.reward_type != cur.reward_type) {
    return InvalidArgumentError("the reward type of an experiment cannot change")
        .With(kPayloadPointer, "#/rewardType");
  }
  if (next.arms.size() < cur.arms.size()) {
    return InvalidArgumentError("arms cannot be removed (retire them with \"retired\": true)")
        .With(kPayloadPointer, "#/arms");
  }
  for (size_t i = 0; i < cur.arms.size(); ++i) {
    if (next.arms[i].name != cur.arms[i].name) {
      return InvalidArgumentError("arms cannot be renamed or reordered; new arms go at the end")
          .With(kPayloadPointer, "#/arms/" + std::to_string(i) + "/name");
    }
  }
  auto updated = std::make_shared<ExperimentSpec>(next);
  updated->created_at = cur.created_at;
  updated->updated_at = FormatTimestamp(impl_->clock.Now());
  updated->winner = cur.winner;
  EVO_RETURN_IF_ERROR(impl_->db.Transaction(
      [&](store::Executor& tx) -> Status {
        return tx
            .Exec("UPDATE bandit_experiments SET spec = ?, updated_at = ? WHERE uid = ?",
                  {ToJson(*updated).dump(), updated->updated_at, static_cast<int64_t>(e->uid)})
            .status();
      },
      store::TxMode::kDurable));
  // New policy parameters apply to the state learned so far.
  std::lock_guard lock(e->mu);
  e->spec = updated;
  e->policy->Configure(updated->policy);
  e->SyncArms();
  return *updated;
}

Status Service::Delete(std::string_view name) {
  std::lock_guard defs(impl_->defs_mu);
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  EVO_RETURN_IF_ERROR(impl_->db.Transaction(
      [&](store::Executor& tx) -> Status {
        return tx
            .Exec("DELETE FROM bandit_experiments WHERE uid = ?", {static_cast<int64_t>(e->uid)})
            .status();
      },
      store::TxMode::kDurable));
  std::unique_lock lock(impl_->registry_mu);
  impl_->by_uid.erase(e->uid);
  impl_->by_name.erase(impl_->by_name.find(name));
  return OkStatus();
}

StatusOr<PullResult> Service::Pull(std::string_view name, std::string_view unit_id) {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  const int64_t now_ms = impl_->NowMs();
  PullResult result;
  std::shared_ptr<Journal> to_sync;
  {
    std::lock_guard lock(e->mu);
    Journal& journal = *e->journal;
    const ExperimentSpec& spec = *e->spec;
    Impl::ExpireLocked(*e, now_ms, journal, Impl::kRequestExpirySteps);
    size_t arm = 0;
    bool chosen = false;
    uint64_t unit = 0;
    std::optional<uint16_t> stuck;
    if (e->winner >= 0) {
      arm = static_cast<size_t>(e->winner);
      chosen = true;
    } else if (!unit_id.empty()) {
      unit = HashUnit(unit_id);
      stuck = e->sticky.Find(unit);
      if (stuck && *stuck < e->active.size() && e->active[*stuck]) {
        arm = *stuck;
        chosen = true;
      }
    }
    if (!chosen && spec.min_traffic > 0) {
      // The traffic floor: the most starved active arm below its share goes first.
      int64_t total = 0;
      for (int64_t p : e->pulls) {
        total += p;
      }
      double worst = 1;
      for (size_t i = 0; i < e->pulls.size(); ++i) {
        if (!e->active[i]) {
          continue;
        }
        const double share =
            total == 0 ? 0 : static_cast<double>(e->pulls[i]) / static_cast<double>(total);
        if (share < spec.min_traffic && share < worst) {
          worst = share;
          arm = i;
          chosen = true;
        }
      }
    }
    if (!chosen) {
      arm = e->policy->Select(e->active, e->rng);
    }
    // Journal first, then change the state: what is not stored is not done.
    if (unit != 0 && e->winner < 0 && stuck != arm) {
      EVO_RETURN_IF_ERROR(
          journal.Append({RecordType::kAssign, e->uid, static_cast<uint16_t>(arm), unit, 0}));
      e->sticky.Set(unit, static_cast<uint16_t>(arm));
    }
    impl_->CapPending(*e, journal);
    const int64_t expiry_s = now_ms / 1000 + spec.attribution_window_s;
    const uint64_t seq = e->pending.next_seq();
    EVO_RETURN_IF_ERROR(journal.Append({RecordType::kPull, e->uid, static_cast<uint16_t>(arm), seq,
                                        static_cast<double>(expiry_s)}));
    e->pending.Add(static_cast<uint16_t>(arm), expiry_s);
    ++e->pulls[arm];
    result.pull_id = std::to_string(e->uid) + "." + std::to_string(seq);
    result.arm = spec.arms[arm].name;
    result.payload = spec.arms[arm].payload;
    if (impl_->options.sync == SyncMode::kAlways) {
      to_sync = e->journal;
    }
  }
  if (to_sync != nullptr) {
    // Outside the lock: concurrent pulls share the disk's flush instead of queueing on it.
    EVO_RETURN_IF_ERROR(impl_->SyncJournal(*to_sync));
  }
  return result;
}

StatusOr<std::string> Service::Reward(std::string_view name, std::string_view pull_id,
                                      double reward, std::string_view expected_arm) {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  // "<uid>.<seq>", both decimal.
  const size_t dot = pull_id.find('.');
  uint64_t uid = 0;
  uint64_t seq = 0;
  bool ok =
      dot != std::string_view::npos && dot > 0 && dot + 1 < pull_id.size() && pull_id.size() <= 40;
  for (size_t i = 0; ok && i < pull_id.size(); ++i) {
    if (i == dot) {
      continue;
    }
    const char c = pull_id[i];
    ok = c >= '0' && c <= '9';
    uint64_t& v = i < dot ? uid : seq;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (!ok) {
    return InvalidArgumentError("pullId is not a pull id of this service")
        .With(kPayloadReason, "MALFORMED_PULL_ID")
        .With(kPayloadPointer, "#/pullId");
  }
  if (!std::isfinite(reward)) {
    return InvalidArgumentError("reward must be a finite number").With(kPayloadPointer, "#/reward");
  }
  const int64_t now_ms = impl_->NowMs();
  std::string arm_name;
  std::shared_ptr<Journal> to_sync;
  {
    std::lock_guard lock(e->mu);
    const ExperimentSpec& spec = *e->spec;
    if (spec.reward_type == RewardType::kBernoulli && reward != 0 && reward != 1) {
      return InvalidArgumentError("this experiment's rewards are bernoulli: 0 or 1")
          .With(kPayloadReason, "REWARD_OUT_OF_RANGE")
          .With(kPayloadPointer, "#/reward");
    }
    if (uid != e->uid) {
      return NotFoundError("pull " + std::string(pull_id) + " was not made in this experiment")
          .With(kPayloadReason, "UNKNOWN_PULL");
    }
    Journal& journal = *e->journal;
    Impl::ExpireLocked(*e, now_ms, journal, Impl::kRequestExpirySteps);
    PendingIndex::Entry* entry = e->pending.Find(seq);
    if (entry != nullptr && entry->state == PullState::kPending && seq >= e->pending.cursor() &&
        e->pending.Unix(entry->expiry_s) <= now_ms / 1000) {
      // Its window has ended but expiry has not come this far yet: expire up to it, in
      // order, so that this reward is a late one. Expire may copy the chunk: find it again.
      Impl::ExpireDue(*e, now_ms, journal, seq - e->pending.cursor() + 1);
      entry = e->pending.Find(seq);
    }
    if (entry == nullptr) {
      return NotFoundError(seq >= e->pending.next_seq()
                               ? "pull " + std::string(pull_id) + " was never made"
                               : "pull " + std::string(pull_id) +
                                     " is too old: its window ended long ago and it was purged")
          .With(kPayloadReason, "UNKNOWN_PULL");
    }
    const uint16_t arm = entry->arm;
    if (!expected_arm.empty() && expected_arm != spec.arms[arm].name) {
      return InvalidArgumentError("pull " + std::string(pull_id) + " was served arm \"" +
                                  spec.arms[arm].name + "\", not \"" + std::string(expected_arm) +
                                  "\"")
          .With(kPayloadReason, "ARM_MISMATCH")
          .With(kPayloadPointer, "#/arm");
    }
    switch (entry->state) {
      case PullState::kRewarded:
      case PullState::kLateRewarded:
        return AlreadyExistsError("pull " + std::string(pull_id) + " already has its reward")
            .With(kPayloadReason, "DUPLICATE_REWARD");
      case PullState::kPending:
        EVO_RETURN_IF_ERROR(journal.Append({RecordType::kReward, e->uid, arm, seq, reward}));
        entry->state = PullState::kRewarded;
        e->policy->Update(arm, reward);
        break;
      case PullState::kExpired:
        EVO_RETURN_IF_ERROR(journal.Append({RecordType::kLateReward, e->uid, arm, seq, reward}));
        entry->state = PullState::kLateRewarded;
        break;
    }
    ++e->rewards[arm];
    e->reward_sum[arm] += reward;
    arm_name = spec.arms[arm].name;
    if (impl_->options.sync == SyncMode::kAlways) {
      to_sync = e->journal;
    }
  }
  if (to_sync != nullptr) {
    EVO_RETURN_IF_ERROR(impl_->SyncJournal(*to_sync));
  }
  return arm_name;
}

StatusOr<ExperimentStats> Service::Stats(std::string_view name) const {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  return impl_->StatsOf(*e);
}

Status Service::Tick() {
  return Guarded("tick", [&] { return impl_->TickNow(); });
}

Status Service::Snapshot() {
  return Guarded("snapshot", [&] { return impl_->SnapshotNow(); });
}

ServiceCounters Service::Counters() const {
  return {impl_->journal_syncs.load(std::memory_order_relaxed),
          impl_->snapshots.load(std::memory_order_relaxed),
          impl_->snapshot_failures.load(std::memory_order_relaxed)};
}

const ServiceOptions& Service::options() const { return impl_->options; }

}  // namespace evo::bandit
