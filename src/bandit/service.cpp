#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "bandit/bandit.hpp"
#include "bandit/journal.hpp"
#include "bandit/pending.hpp"
#include "bandit/rng.hpp"

namespace evo::bandit {
namespace {

// The snapshot file starts with one of these: the version of the pending rings' encoding
// (PendingIndex::kFormat). Version 2 (compact rings) is written; version 1 (8 bytes a ring
// entry) is still read, so a snapshot of an older evo loads after an upgrade.
constexpr uint64_t kSnapshotMagic = 0x3250414e53424f45ULL;    // "EOBSNAP2"
constexpr uint64_t kSnapshotMagicV1 = 0x3150414e53424f45ULL;  // "EOBSNAP1"

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {{1,
                                                            "CREATE TABLE bandit_experiments("
                                                            " name TEXT PRIMARY KEY,"
                                                            " uid INTEGER NOT NULL UNIQUE,"
                                                            " spec TEXT NOT NULL,"
                                                            " created_at TEXT NOT NULL,"
                                                            " updated_at TEXT NOT NULL)"}};
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
  return h;
}

// The runtime state of one experiment. Everything but uid is guarded by mu.
struct Experiment {
  uint32_t uid = 0;
  mutable std::mutex mu;
  ExperimentSpec spec;
  std::unique_ptr<Policy> policy;
  Rng rng{1};
  std::vector<uint8_t> active;
  std::vector<int64_t> pulls;
  std::vector<int64_t> rewards;
  std::vector<int64_t> expired;
  std::vector<double> reward_sum;
  PendingIndex pending;
  std::unordered_map<uint64_t, uint16_t> sticky;  // hash(unitId) -> arm
  int64_t winner = -1;
  // Where this experiment's records go: switched to the next journal by a snapshot at the
  // moment the experiment is captured (Impl keeps the journal alive).
  Journal* journal = nullptr;

  // Brings the per-arm vectors and the policy up to spec.arms (arms are only appended).
  void SyncArms() {
    const size_t n = spec.arms.size();
    while (policy->arms() < n) {
      policy->AddArm();
    }
    active.resize(n);
    for (size_t i = 0; i < n; ++i) {
      active[i] = spec.arms[i].retired ? 0 : 1;
    }
    pulls.resize(n, 0);
    rewards.resize(n, 0);
    expired.resize(n, 0);
    reward_sum.resize(n, 0);
    if (winner < 0 && spec.winner) {
      for (size_t i = 0; i < n; ++i) {
        if (spec.arms[i].name == *spec.winner) {
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

namespace {
// The stored form: the API form plus output-only fields.
StatusOr<ExperimentSpec> SpecFromStoredJson(const nlohmann::json& j) {
  EVO_ASSIGN_OR_RETURN(ExperimentSpec s, ParseSpec(j));
  s.created_at = j.value("createTime", "");
  s.updated_at = j.value("updateTime", "");
  if (const auto w = j.find("winner"); w != j.end() && w->is_string()) {
    s.winner = w->get<std::string>();
  }
  return s;
}
}  // namespace

// ---- service -----------------------------------------------------------------------------

struct Service::Impl {
  store::Database& db;
  std::filesystem::path dir;
  ServiceOptions options;
  const Clock& clock;

  mutable std::shared_mutex registry_mu;  // guards the maps (not the experiments)
  std::map<std::string, std::shared_ptr<Experiment>, std::less<>> by_name;
  std::unordered_map<uint32_t, std::shared_ptr<Experiment>> by_uid;

  // The current journal; replaced (under every experiment's lock) by a snapshot.
  std::shared_ptr<Journal> journal;
  uint64_t generation = 0;
  std::mutex snapshot_mu;  // one snapshot at a time
  int64_t last_snapshot_ms = 0;
  mutable std::mutex seed_mu;
  uint64_t seed_counter = 0;

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

  std::shared_ptr<Experiment> Find(std::string_view name) const {
    std::shared_lock lock(registry_mu);
    const auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }

  static Status NoExperiment(std::string_view name) {
    return NotFoundError("no experiment named \"" + std::string(name) + "\"")
        .With(kPayloadReason, "UNKNOWN_EXPERIMENT");
  }

  std::shared_ptr<Experiment> MakeExperiment(uint32_t uid, ExperimentSpec spec) {
    auto e = std::make_shared<Experiment>();
    e->uid = uid;
    e->policy = Policy::Create(spec.policy, spec.reward_type, 0);
    e->rng = Rng(NextSeed());
    e->spec = std::move(spec);
    e->SyncArms();
    return e;
  }

  // Expiry work done under an experiment's lock at a time. All the pulls of one second expire
  // together (135,000 under bench/bandit.sh: ~15 ms of journal records and policy updates, a
  // stall for every request queued on the lock), so a request takes a few, which keeps up
  // with any pull rate, and Tick takes the rest in slices, releasing the lock in between.
  static constexpr uint64_t kRequestExpirySteps = 64;
  static constexpr uint64_t kTickExpirySteps = 4096;

  // Expires due pulls of `e`, oldest first, looking at `max_steps` entries at most
  // (journalled first; a full journal leaves them pending until the next snapshot). Returns
  // true when due pulls may be left. REQUIRES: e.mu.
  static bool ExpireDue(Experiment& e, int64_t now_ms, Journal& j, uint64_t max_steps) {
    return e.pending.Expire(
        now_ms / 1000,
        [&](uint64_t seq, uint16_t arm) {
          if (!j.Append({RecordType::kExpire, e.uid, arm, seq, 0}).ok()) {
            return false;
          }
          e.policy->Update(arm, 0);
          ++e.expired[arm];
          return true;
        },
        max_steps);
  }

  // ExpireDue, then purges as many entries at most. Returns true when work may be left.
  // REQUIRES: e.mu.
  static bool ExpireLocked(Experiment& e, int64_t now_ms, Journal& j, uint64_t max_steps) {
    const bool more = ExpireDue(e, now_ms, j, max_steps);
    return e.pending.Purge(now_ms / 1000, e.spec.attribution_window_s, max_steps) || more;
  }

  // Applies one journal record during recovery.
  void ApplyRecord(const Record& r) {
    const auto it = by_uid.find(r.experiment);
    if (it == by_uid.end()) {
      return;  // deleted since
    }
    Experiment& e = *it->second;
    if (r.arm >= e.spec.arms.size() && r.type != RecordType::kAssign) {
      return;
    }
    switch (r.type) {
      case RecordType::kPull:
        e.pending.Restore(r.seq, r.arm, static_cast<int64_t>(r.value), PullState::kPending);
        ++e.pulls[r.arm];
        break;
      case RecordType::kAssign:
        e.sticky[r.seq] = r.arm;
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

  // An experiment's snapshot in three parts: `head` and `tail` are written under its lock,
  // the pending ring (the large part) is captured there and serialised after the lock.
  struct Captured {
    std::string head;
    PendingIndex::Captured ring;
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
    PutRaw(c.tail, static_cast<uint64_t>(e.sticky.size()));
    for (const auto& [unit, arm] : e.sticky) {
      PutRaw(c.tail, unit);
      PutRaw(c.tail, arm);
    }
    PutRaw(c.tail, e.winner);
    return c;
  }

  Status DeserializeExperiment(std::string_view& in, uint32_t ring_format) {
    uint32_t uid = 0;
    uint64_t policy_size = 0;
    if (!GetRaw(in, uid) || !GetRaw(in, policy_size) || policy_size > in.size()) {
      return DataLossError("bandit snapshot: truncated");
    }
    auto policy = Policy::Deserialize(in.substr(0, policy_size));
    in.remove_prefix(policy_size);
    if (!policy.ok()) {
      return policy.status();
    }
    uint64_t n = 0;
    if (!GetRaw(in, n) || n > 100000) {
      return DataLossError("bandit snapshot: truncated");
    }
    std::vector<int64_t> pulls(n), rewards(n), expired(n);
    std::vector<double> sums(n);
    for (size_t i = 0; i < n; ++i) {
      if (!GetRaw(in, pulls[i]) || !GetRaw(in, rewards[i]) || !GetRaw(in, expired[i]) ||
          !GetRaw(in, sums[i])) {
        return DataLossError("bandit snapshot: truncated");
      }
    }
    PendingIndex pending;
    if (!pending.Deserialize(in, ring_format)) {
      return DataLossError("bandit snapshot: truncated pending pulls");
    }
    uint64_t sticky_n = 0;
    if (!GetRaw(in, sticky_n) || sticky_n > in.size() / 10) {
      return DataLossError("bandit snapshot: truncated");
    }
    std::unordered_map<uint64_t, uint16_t> sticky;
    sticky.reserve(sticky_n);
    for (size_t i = 0; i < sticky_n; ++i) {
      uint64_t unit = 0;
      uint16_t arm = 0;
      if (!GetRaw(in, unit) || !GetRaw(in, arm)) {
        return DataLossError("bandit snapshot: truncated");
      }
      sticky[unit] = arm;
    }
    int64_t winner = -1;
    if (!GetRaw(in, winner)) {
      return DataLossError("bandit snapshot: truncated");
    }
    const auto it = by_uid.find(uid);
    if (it == by_uid.end()) {
      return OkStatus();  // deleted since
    }
    Experiment& e = *it->second;
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

  Status LoadSnapshot(uint64_t& generation_out) {
    std::ifstream in(SnapshotPath(), std::ios::binary);
    if (!in) {
      generation_out = 0;
      return OkStatus();
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string_view v(bytes);
    uint64_t magic = 0;
    uint64_t gen = 0;
    uint64_t count = 0;
    if (!GetRaw(v, magic) || (magic != kSnapshotMagic && magic != kSnapshotMagicV1) ||
        !GetRaw(v, gen) || !GetRaw(v, count)) {
      return DataLossError("bandit snapshot " + SnapshotPath().string() + ": not a snapshot");
    }
    const uint32_t ring_format =
        magic == kSnapshotMagic ? PendingIndex::kFormat : PendingIndex::kFormatV1;
    for (uint64_t i = 0; i < count; ++i) {
      EVO_RETURN_IF_ERROR(DeserializeExperiment(v, ring_format));
    }
    generation_out = gen;
    return OkStatus();
  }

  // Captures each experiment under its own lock and, in the same critical section, points
  // it at the next journal: every record of an experiment is then either in the snapshot or
  // in the next journal. Only one experiment is held at a time, briefly. Then writes the
  // snapshot durably and removes the journals it covers.
  Status SnapshotNow() {
    std::lock_guard snapshot_lock(snapshot_mu);
    const uint64_t next_gen = generation + 1;
    EVO_ASSIGN_OR_RETURN(std::unique_ptr<Journal> opened, Journal::Open(JournalPath(next_gen)));
    std::shared_ptr<Journal> next(std::move(opened));
    // No experiment is created or deleted meanwhile (Create and Delete take registry_mu
    // exclusively); a created one starts on `journal`, which is switched below.
    std::shared_lock registry_lock(registry_mu);
    std::vector<std::shared_ptr<Experiment>> all;
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
      e->journal = next.get();
    }
    std::shared_ptr<Journal> old = std::move(journal);
    journal = next;
    const uint64_t old_gen = generation;
    generation = next_gen;
    registry_lock.unlock();
    old.reset();  // no experiment points at it any more; its records are in the snapshot
    // The large part, outside every lock: pulls go on meanwhile (copying a chunk they
    // write). Streamed to the file a piece at a time, so memory stays flat.
    const std::filesystem::path tmp = dir / "snapshot.tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f.write(out.data(), static_cast<std::streamsize>(out.size()));
      for (Captured& c : captured) {
        f.write(c.head.data(), static_cast<std::streamsize>(c.head.size()));
        PendingIndex::Serialize(c.ring, [&f](std::string_view piece) {
          f.write(piece.data(), static_cast<std::streamsize>(piece.size()));
        });
        f.write(c.tail.data(), static_cast<std::streamsize>(c.tail.size()));
        c = Captured();
      }
      if (!f.flush()) {
        return UnavailableError("bandit snapshot: cannot write " + tmp.string());
      }
    }
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)::fsync(fd);
      ::close(fd);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, SnapshotPath(), ec);
    if (ec) {
      return UnavailableError("bandit snapshot: " + ec.message());
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
    for (uint64_t g = 0; g <= old_gen; ++g) {
      std::filesystem::remove(JournalPath(g), ec);
    }
    last_snapshot_ms = NowMs();
    return OkStatus();
  }

  StatusOr<ExperimentSpec> SpecFromRow(const store::Row& row, uint32_t& uid) const {
    EVO_ASSIGN_OR_RETURN(int64_t u, store::AsInt64(row[1]));
    EVO_ASSIGN_OR_RETURN(std::string text, store::AsText(row[2]));
    uid = static_cast<uint32_t>(u);
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
      return DataLossError("bandit_experiments: corrupt spec JSON");
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
    EVO_ASSIGN_OR_RETURN(ExperimentSpec spec, impl->SpecFromRow(row, uid));
    auto e = impl->MakeExperiment(uid, std::move(spec));
    impl->by_name[e->spec.name] = e;
    impl->by_uid[uid] = e;
  }
  // Recovery: the snapshot, then every journal from its generation on, in order.
  uint64_t gen = 0;
  EVO_RETURN_IF_ERROR(impl->LoadSnapshot(gen));
  std::vector<uint64_t> gens;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = entry.path().filename().string();
    if (f.starts_with("journal-") && f.ends_with(".log")) {
      const std::string digits = f.substr(8, f.size() - 12);
      if (!digits.empty() && std::all_of(digits.begin(), digits.end(), ::isdigit)) {
        gens.push_back(std::stoull(digits));
      }
    }
  }
  std::sort(gens.begin(), gens.end());
  uint64_t last = gen;
  for (uint64_t g : gens) {
    if (g >= gen) {
      EVO_RETURN_IF_ERROR(
          Journal::Replay(impl->JournalPath(g), [&](const Record& r) { impl->ApplyRecord(r); }));
      last = std::max(last, g);
    }
  }
  impl->generation = last;
  EVO_ASSIGN_OR_RETURN(std::unique_ptr<Journal> journal, Journal::Open(impl->JournalPath(last)));
  impl->journal = std::shared_ptr<Journal>(std::move(journal));
  for (auto& [uid, e] : impl->by_uid) {
    e->journal = impl->journal.get();
  }
  // Compact right away: recovery work is not repeated by the next start.
  EVO_RETURN_IF_ERROR(impl->SnapshotNow());
  return std::unique_ptr<Service>(new Service(std::move(impl)));
}

StatusOr<ExperimentSpec> Service::Create(ExperimentSpec spec) {
  EVO_RETURN_IF_ERROR(Validate(spec));
  spec.created_at = FormatTimestamp(impl_->clock.Now());
  spec.updated_at = spec.created_at;
  spec.winner.reset();
  std::unique_lock lock(impl_->registry_mu);
  if (impl_->by_name.count(spec.name) != 0) {
    return AlreadyExistsError("experiment \"" + spec.name + "\" exists")
        .With(kPayloadReason, "EXPERIMENT_EXISTS");
  }
  int64_t uid = 0;
  EVO_RETURN_IF_ERROR(impl_->db.Transaction([&](store::Executor& tx) -> Status {
    EVO_ASSIGN_OR_RETURN(store::Row row,
                         tx.QueryOne("SELECT COALESCE(MAX(uid), 0) + 1 FROM bandit_experiments"));
    EVO_ASSIGN_OR_RETURN(uid, store::AsInt64(row[0]));
    return tx
        .Exec(
            "INSERT INTO bandit_experiments(name, uid, spec, created_at, updated_at) "
            "VALUES(?, ?, ?, ?, ?)",
            {spec.name, uid, ToJson(spec).dump(), spec.created_at, spec.updated_at})
        .status();
  }));
  auto e = impl_->MakeExperiment(static_cast<uint32_t>(uid), spec);
  e->journal = impl_->journal.get();
  impl_->by_name[spec.name] = e;
  impl_->by_uid[e->uid] = e;
  return spec;
}

StatusOr<ExperimentSpec> Service::Get(std::string_view name) const {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  std::lock_guard lock(e->mu);
  return e->spec;
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
  for (const auto& e : page) {
    std::lock_guard lock(e->mu);
    out.push_back(e->spec);
  }
  return out;
}

StatusOr<ExperimentSpec> Service::Update(const ExperimentSpec& next) {
  EVO_RETURN_IF_ERROR(Validate(next));
  auto e = impl_->Find(next.name);
  if (!e) {
    return Impl::NoExperiment(next.name);
  }
  std::lock_guard lock(e->mu);
  const ExperimentSpec& cur = e->spec;
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
  ExperimentSpec updated = next;
  updated.created_at = cur.created_at;
  updated.updated_at = FormatTimestamp(impl_->clock.Now());
  updated.winner = cur.winner;
  EVO_RETURN_IF_ERROR(impl_->db
                          .Exec("UPDATE bandit_experiments SET spec = ?, updated_at = ? "
                                "WHERE name = ?",
                                {ToJson(updated).dump(), updated.updated_at, updated.name})
                          .status());
  // New policy parameters apply to the state learned so far.
  e->spec = std::move(updated);
  e->policy->Configure(e->spec.policy);
  e->SyncArms();
  return e->spec;
}

Status Service::Delete(std::string_view name) {
  std::unique_lock lock(impl_->registry_mu);
  const auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) {
    return Impl::NoExperiment(name);
  }
  EVO_RETURN_IF_ERROR(
      impl_->db.Exec("DELETE FROM bandit_experiments WHERE name = ?", {std::string(name)})
          .status());
  impl_->by_uid.erase(it->second->uid);
  impl_->by_name.erase(it);
  return OkStatus();
}

StatusOr<PullResult> Service::Pull(std::string_view name, std::string_view unit_id) {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  const int64_t now_ms = impl_->NowMs();
  PullResult result;
  {
    std::lock_guard lock(e->mu);
    Journal& journal = *e->journal;
    Impl::ExpireLocked(*e, now_ms, journal, Impl::kRequestExpirySteps);
    size_t arm = 0;
    bool chosen = false;
    uint64_t unit = 0;
    if (e->winner >= 0) {
      arm = static_cast<size_t>(e->winner);
      chosen = true;
    } else if (!unit_id.empty()) {
      unit = HashUnit(unit_id);
      if (const auto it = e->sticky.find(unit); it != e->sticky.end() && e->active[it->second]) {
        arm = it->second;
        chosen = true;
      }
    }
    if (!chosen && e->spec.min_traffic > 0) {
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
        if (share < e->spec.min_traffic && share < worst) {
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
    if (unit != 0 && e->winner < 0) {
      const auto it = e->sticky.find(unit);
      if (it == e->sticky.end() || it->second != arm) {
        EVO_RETURN_IF_ERROR(
            journal.Append({RecordType::kAssign, e->uid, static_cast<uint16_t>(arm), unit, 0}));
        e->sticky[unit] = static_cast<uint16_t>(arm);
      }
    }
    const int64_t expiry_s = now_ms / 1000 + e->spec.attribution_window_s;
    const uint64_t seq = e->pending.next_seq();
    EVO_RETURN_IF_ERROR(journal.Append({RecordType::kPull, e->uid, static_cast<uint16_t>(arm), seq,
                                        static_cast<double>(expiry_s)}));
    e->pending.Add(static_cast<uint16_t>(arm), expiry_s);
    ++e->pulls[arm];
    result.pull_id = std::to_string(e->uid) + "." + std::to_string(seq);
    result.arm = e->spec.arms[arm].name;
    result.payload = e->spec.arms[arm].payload;
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
  if (e->spec.reward_type == RewardType::kBernoulli && reward != 0 && reward != 1) {
    return InvalidArgumentError("this experiment's rewards are bernoulli: 0 or 1")
        .With(kPayloadReason, "REWARD_OUT_OF_RANGE")
        .With(kPayloadPointer, "#/reward");
  }
  if (uid != e->uid) {
    return NotFoundError("pull " + std::string(pull_id) + " was not made in this experiment")
        .With(kPayloadReason, "UNKNOWN_PULL");
  }
  const int64_t now_ms = impl_->NowMs();
  std::string arm_name;
  {
    std::lock_guard lock(e->mu);
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
    if (!expected_arm.empty() && expected_arm != e->spec.arms[arm].name) {
      return InvalidArgumentError("pull " + std::string(pull_id) + " was served arm \"" +
                                  e->spec.arms[arm].name + "\", not \"" +
                                  std::string(expected_arm) + "\"")
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
    arm_name = e->spec.arms[arm].name;
  }
  return arm_name;
}

StatusOr<ExperimentStats> Service::Stats(std::string_view name) const {
  auto e = impl_->Find(name);
  if (!e) {
    return Impl::NoExperiment(name);
  }
  ExperimentStats out;
  std::unique_ptr<Policy> copy;
  std::vector<uint8_t> active;
  uint64_t seed = 0;
  {
    std::lock_guard lock(e->mu);
    std::string state;
    e->policy->Serialize(state);
    auto restored = Policy::Deserialize(state);
    if (!restored.ok()) {
      return restored.status();
    }
    copy = std::move(*restored);
    active = e->active;
    for (size_t i = 0; i < e->spec.arms.size(); ++i) {
      ArmStats a;
      a.name = e->spec.arms[i].name;
      a.retired = e->spec.arms[i].retired;
      a.pulls = e->pulls[i];
      a.rewards = e->rewards[i];
      a.expired = e->expired[i];
      a.reward_sum = e->reward_sum[i];
      out.arms.push_back(std::move(a));
      out.pulls += e->pulls[i];
    }
    out.pending = static_cast<int64_t>(e->pending.next_seq() - e->pending.cursor());
    if (e->winner >= 0) {
      out.winner = e->spec.arms[static_cast<size_t>(e->winner)].name;
    }
    seed = e->rng.Next();
  }
  // Posterior summaries and Monte Carlo outside the experiment's lock.
  Rng rng(seed);
  const int samples = impl_->options.probability_samples;
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

Status Service::Tick() {
  const int64_t now_ms = impl_->NowMs();
  std::vector<std::shared_ptr<Experiment>> all;
  {
    std::shared_lock lock(impl_->registry_mu);
    for (const auto& [uid, e] : impl_->by_uid) {
      all.push_back(e);
    }
  }
  for (const auto& e : all) {
    bool check_stop = false;
    for (bool more = true; more;) {
      std::lock_guard lock(e->mu);
      more = Impl::ExpireLocked(*e, now_ms, *e->journal, Impl::kTickExpirySteps);
      check_stop = e->winner < 0 && e->spec.stop_probability > 0;
    }
    if (check_stop) {
      auto stats = Stats(e->spec.name);
      if (stats.ok() && stats->pulls >= e->spec.stop_min_pulls) {
        for (size_t i = 0; i < stats->arms.size(); ++i) {
          if (stats->arms[i].probability_best >= e->spec.stop_probability) {
            std::lock_guard lock(e->mu);
            e->spec.winner = stats->arms[i].name;
            e->winner = static_cast<int64_t>(i);
            (void)impl_->db.Exec("UPDATE bandit_experiments SET spec = ? WHERE name = ?",
                                 {ToJson(e->spec).dump(), e->spec.name});
            break;
          }
        }
      }
    }
  }
  // Snapshot on time, or early when the journal is an eighth full (it never fills up, and
  // its resident pages stay bounded).
  const Journal& journal = *impl_->journal;
  if (now_ms - impl_->last_snapshot_ms >= impl_->options.snapshot_interval.count() ||
      journal.used() * 8 >= journal.capacity()) {
    return impl_->SnapshotNow();
  }
  return OkStatus();
}

Status Service::Snapshot() { return impl_->SnapshotNow(); }

}  // namespace evo::bandit
