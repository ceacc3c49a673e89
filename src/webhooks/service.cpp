// The webhook service: the model in the store (event types, endpoints, messages, deliveries,
// attempts), publish through the fan-out queue, the fan-out worker, endpoint verification,
// and the batched recorder of attempts. Delivery itself is dispatcher.cpp.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "http/json_schema.hpp"
#include "webhooks/internal.hpp"
#include "webhooks/signature.hpp"

namespace evo::webhooks {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kFanoutBatch = 100;
constexpr size_t kRecorderBatch = 1000;
constexpr milliseconds kRecorderFlush{50};
// Attempt records waiting for the recorder beyond which successes and retries are dropped
// (failures never are: they are bounded by the deliveries leased).
constexpr size_t kMaxPendingRecords = 100'000;
// A failure whose record could not be stored is handed back to its queue after this, to be
// tried (and recorded) again, rather than dead-lettered without its row.
constexpr milliseconds kUnrecordedFailureDelay{5000};
// Retention: how often the sweep runs, rows per transaction, transactions per turn (a turn
// that does not finish runs again on the recorder's next turn, so it keeps up with any rate
// without holding the recorder for long).
constexpr milliseconds kSweepInterval{60'000};
constexpr int64_t kSweepBatch = 1000;
constexpr int kSweepBatchesPerTurn = 20;
// A deleted endpoint's attempts and delivery rows are purged for this long after the delete
// (a request in flight at the delete may still record its attempt).
constexpr milliseconds kTombstoneLife{3'600'000};
// Delivery bodies kept in memory for the dispatcher; older ones are read back when needed.
constexpr size_t kBodyCacheBytes = 32 << 20;

// The fields of a stored endpoint (StoredEndpoint keys) each kind of write owns: a write
// stores only its own, so that writers of different kinds never undo each other.
constexpr std::array<std::string_view, 9> kConfigFields = {
    "url",     "description", "eventTypes", "filter", "rateLimitPerSecond", "maxConcurrency",
    "ordered", "headers",     "updatedMs"};
constexpr std::array<std::string_view, 5> kStateFields = {"state", "enabled", "disabledReason",
                                                          "failingSinceMs", "updatedMs"};
constexpr std::array<std::string_view, 6> kSecretFields = {
    "secret",     "previousSecret",     "previousSecretUntilMs",
    "signingKey", "previousSigningKey", "updatedMs"};

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {{1, R"sql(
CREATE TABLE webhook_event_types(
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL,
  schema TEXT,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE TABLE webhook_endpoints(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL);
CREATE TABLE webhook_messages(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  event_type TEXT NOT NULL,
  event_id TEXT,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX webhook_messages_type ON webhook_messages(event_type, seq);
CREATE TABLE webhook_deliveries(
  endpoint_id TEXT NOT NULL,
  message_seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY(endpoint_id, message_seq)) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_state ON webhook_deliveries(endpoint_id, state, updated_ms);
CREATE TABLE webhook_attempts(
  seq INTEGER PRIMARY KEY,
  endpoint_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  body TEXT NOT NULL);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, seq);
CREATE INDEX webhook_attempts_message ON webhook_attempts(message_id, seq);
)sql"},
                                                           {2, R"sql(
CREATE INDEX webhook_messages_event_id ON webhook_messages(event_id) WHERE event_id IS NOT NULL;
)sql"},
                                                           {3, R"sql(
CREATE TABLE webhook_applications(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  uid TEXT UNIQUE,
  created_ms INTEGER NOT NULL);
ALTER TABLE webhook_messages ADD COLUMN application_id TEXT;
)sql"},
                                                           {4, R"sql(
CREATE INDEX webhook_messages_created ON webhook_messages(created_ms);
CREATE INDEX webhook_deliveries_message ON webhook_deliveries(message_seq);
CREATE TABLE webhook_deleted_endpoints(
  id TEXT PRIMARY KEY,
  deleted_ms INTEGER NOT NULL);
)sql"}};
  return migrations;
}

int64_t Int(const store::Value& v) {
  const auto* i = std::get_if<int64_t>(&v);
  return i != nullptr ? *i : 0;
}
std::string Text(const store::Value& v) {
  const auto* s = std::get_if<std::string>(&v);
  return s != nullptr ? *s : std::string();
}

Status ValidateName(std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      });
  if (!ok) {
    return InvalidArgumentError("an event type name is 1..128 characters of A-Z a-z 0-9 . _ -")
        .With(kPayloadPointer, "#/name");
  }
  return OkStatus();
}

// The numeric part of "ep_123" / "msg_123" (0 when it has none).
int64_t SeqOf(std::string_view id) {
  const size_t underscore = id.find('_');
  if (underscore == std::string_view::npos) {
    return 0;
  }
  int64_t v = 0;
  for (char c : id.substr(underscore + 1)) {
    if (c < '0' || c > '9' || v > INT64_MAX / 10 - 10) {
      return 0;
    }
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string RandomChallenge() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  return fmt::format("{:02x}", fmt::join(bytes, bytes + sizeof bytes, ""));
}

// A pending write of the recorder.
struct Record {
  Attempt attempt;
  std::string delivery_state;  // "succeeded" | "pending" | "failed"
  // A failure: the delivery's lease, dead-lettered once the record is durable.
  std::string fail_lease_id;
};

class ServiceImpl final : public Service {
 public:
  ServiceImpl(const Options& options, store::Database& db, queue::Broker& broker,
              queue::IdSource ids, const Clock& clock, metrics::Registry* registry)
      : options_(options),
        db_(db),
        broker_(broker),
        ids_(std::move(ids)),
        clock_(clock),
        registry_(registry) {}

  ~ServiceImpl() override { Stop(); }

  Status Start() {
    EVO_RETURN_IF_ERROR(db_.Migrate("webhooks", Migrations()));
    queue::QueueOptions fanout;
    fanout.max_attempts = 100;
    fanout.dedupe_window = options_.idempotency_window;
    fanout.max_payload_bytes = options_.max_payload_bytes + 4096;
    EVO_RETURN_IF_ERROR(broker_.DeclareQueue(kFanoutQueue, fanout));
    EVO_RETURN_IF_ERROR(LoadApplications());
    EVO_RETURN_IF_ERROR(LoadEventTypes());
    EVO_RETURN_IF_ERROR(LoadEndpoints());
    outbound::ClientOptions client;
    client.ssrf = options_.ssrf;
    client.max_body_bytes = 4096;
    // Endpoints often share a host (one receiver, many paths or tenants): allow it enough
    // connections; the dispatcher caps what is in flight overall.
    client.max_host_connections = 64;
    client.max_total_connections = 512;
    EVO_ASSIGN_OR_RETURN(client_, outbound::Client::Start(client, registry_));
    DispatcherHooks hooks;
    hooks.record = [this](Attempt a, std::string state) {
      Enqueue({std::move(a), std::move(state), ""});
    };
    hooks.fail = [this](Attempt a, std::string lease_id) {
      Enqueue({std::move(a), "failed", std::move(lease_id)});
    };
    // Endpoint writes are SQLite writes: the recorder thread does them, not the dispatcher's.
    hooks.disable = [this](const std::string& id, std::string reason) {
      RunOnRecorder([this, id, reason = std::move(reason)] { Disable(id, reason); });
    };
    hooks.set_failing = [this](const std::string& id, int64_t since) {
      RunOnRecorder([this, id, since] { SetFailing(id, since); });
    };
    hooks.body = [this](std::string_view message_id) { return BodyOf(message_id); };
    EVO_ASSIGN_OR_RETURN(dispatcher_, Dispatcher::Start(options_, broker_, *client_, clock_,
                                                        std::move(hooks), registry_));
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, ep] : endpoints_) {
        dispatcher_->Update(id, ep);
      }
    }
    next_sweep_ms_ = NowMs();
    recorder_ = std::thread([this] { RecorderLoop(); });
    fanout_ = std::thread([this] { FanoutLoop(); });
    return OkStatus();
  }

  void Stop() override {
    if (stopped_.exchange(true)) {
      return;
    }
    if (fanout_.joinable()) {
      fanout_.join();
    }
    if (dispatcher_) {
      dispatcher_->Stop();
    }
    if (client_) {
      client_->Stop();
    }
    // Last: what the dispatcher recorded while finishing is written too.
    {
      std::lock_guard lock(record_mu_);
      stopping_ = true;
    }
    record_cv_.notify_all();
    if (recorder_.joinable()) {
      recorder_.join();
    }
  }

  // ---- applications ----

  StatusOr<Application> CreateApplication(Application app) override {
    if (app.name.empty() || app.name.size() > 256) {
      return InvalidArgumentError("name is 1..256 bytes").With(kPayloadPointer, "#/name");
    }
    if (app.uid.size() > 256 || app.uid.starts_with("app_")) {
      return InvalidArgumentError("uid is at most 256 bytes and does not start with app_")
          .With(kPayloadPointer, "#/uid");
    }
    EVO_ASSIGN_OR_RETURN(auto ids, ids_(1));
    app.id = fmt::format("app_{}", ids[0]);
    app.created_ms = NowMs();
    auto r = DurableExec(
        "INSERT INTO webhook_applications(seq, id, name, uid, created_ms) VALUES(?, ?, ?, ?, ?)",
        {SeqOf(app.id), app.id, app.name,
         app.uid.empty() ? store::Value(nullptr) : store::Value(app.uid), app.created_ms});
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kAlreadyExists) {
        return AlreadyExistsError(fmt::format("an application with uid '{}' exists", app.uid));
      }
      return r.status();
    }
    std::lock_guard lock(mu_);
    apps_[app.id] = app;
    return app;
  }

  StatusOr<Application> GetApplication(std::string_view id_or_uid) override {
    std::lock_guard lock(mu_);
    if (auto it = apps_.find(id_or_uid); it != apps_.end()) {
      return it->second;
    }
    for (const auto& [id, app] : apps_) {
      if (!app.uid.empty() && app.uid == id_or_uid) {
        return app;
      }
    }
    return NotFoundError(fmt::format("no application '{}'", id_or_uid))
        .With(kPayloadReason, "APPLICATION_NOT_FOUND");
  }

  StatusOr<std::vector<Application>> ListApplications(const Page& page) override {
    const int64_t after = page.after.empty() ? 0 : SeqOf(page.after);
    std::vector<Application> all;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, app] : apps_) {
        if (SeqOf(id) > after) {
          all.push_back(app);
        }
      }
    }
    std::sort(all.begin(), all.end(),
              [](const Application& a, const Application& b) { return SeqOf(a.id) < SeqOf(b.id); });
    if (all.size() > page.size) {
      all.resize(page.size);
    }
    return all;
  }

  Status DeleteApplication(std::string_view id) override {
    EVO_ASSIGN_OR_RETURN(Application app, GetApplication(id));
    {
      std::lock_guard lock(mu_);
      for (const auto& [eid, ep] : endpoints_) {
        if (ep.application_id == app.id) {
          return FailedPreconditionError(
                     fmt::format("endpoints still belong to {}: delete them first", app.id))
              .With(kPayloadHttpStatus, "409");
        }
      }
    }
    EVO_RETURN_IF_ERROR(
        DurableExec("DELETE FROM webhook_applications WHERE id = ?", {app.id}).status());
    std::lock_guard lock(mu_);
    apps_.erase(app.id);
    return OkStatus();
  }

  // ---- event types ----

  StatusOr<EventType> CreateEventType(EventType t) override {
    EVO_RETURN_IF_ERROR(ValidateName(t.name));
    EVO_RETURN_IF_ERROR(CheckSchema(t.schema));
    t.created_ms = t.updated_ms = NowMs();
    auto r = DurableExec(
        "INSERT INTO webhook_event_types(name, description, schema, created_ms, updated_ms) "
        "VALUES(?, ?, ?, ?, ?)",
        {t.name, t.description, t.schema.is_null() ? store::Value(nullptr) : t.schema.dump(),
         t.created_ms, t.updated_ms});
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kAlreadyExists) {
        return AlreadyExistsError(fmt::format("event type '{}' exists", t.name));
      }
      return r.status();
    }
    std::lock_guard lock(mu_);
    types_[t.name] = Entry(t);
    return t;
  }

  StatusOr<EventType> UpdateEventType(EventType t) override {
    EVO_RETURN_IF_ERROR(ValidateName(t.name));
    EVO_RETURN_IF_ERROR(CheckSchema(t.schema));
    EVO_ASSIGN_OR_RETURN(EventType existing, GetEventType(t.name));
    t.created_ms = existing.created_ms;
    t.updated_ms = NowMs();
    EVO_RETURN_IF_ERROR(
        DurableExec("UPDATE webhook_event_types SET description = ?, schema = ?, updated_ms = ? "
                    "WHERE name = ?",
                    {t.description, t.schema.is_null() ? store::Value(nullptr) : t.schema.dump(),
                     t.updated_ms, t.name})
            .status());
    std::lock_guard lock(mu_);
    types_[t.name] = Entry(t);
    return t;
  }

  StatusOr<EventType> GetEventType(std::string_view name) override {
    std::lock_guard lock(mu_);
    auto it = types_.find(std::string(name));
    if (it == types_.end()) {
      return NotFoundError(fmt::format("no event type '{}'", name));
    }
    return it->second.type;
  }

  StatusOr<std::vector<EventType>> ListEventTypes(const Page& page) override {
    std::vector<EventType> out;
    std::lock_guard lock(mu_);
    for (auto it = types_.upper_bound(page.after); it != types_.end() && out.size() < page.size;
         ++it) {
      out.push_back(it->second.type);
    }
    return out;
  }

  Status DeleteEventType(std::string_view name) override {
    EVO_ASSIGN_OR_RETURN(
        store::ExecResult r,
        DurableExec("DELETE FROM webhook_event_types WHERE name = ?", {std::string(name)}));
    if (r.rows_affected == 0) {
      return NotFoundError(fmt::format("no event type '{}'", name));
    }
    std::lock_guard lock(mu_);
    types_.erase(std::string(name));
    return OkStatus();
  }

  // ---- endpoints ----

  void CreateEndpoint(Endpoint ep, bool verify,
                      std::function<void(StatusOr<Created>)> done) override {
    auto checked = CheckEndpoint(ep);
    if (!checked.ok()) {
      return done(checked);
    }
    auto ids = ids_(1);
    if (!ids.ok()) {
      return done(ids.status());
    }
    ep.id = fmt::format("ep_{}", (*ids)[0]);
    if (ep.secret.empty()) {
      ep.secret = GenerateSecret();
    }
    if (ep.asymmetric) {
      ep.signing_key = GenerateEd25519KeyPair().signing_key;
    }
    ep.created_ms = ep.updated_ms = NowMs();
    ep.state = verify ? EndpointState::kUnverified : EndpointState::kActive;
    queue::QueueOptions q;
    q.max_attempts = static_cast<int>(options_.retry_schedule.size()) + 2;
    q.dedupe_window = options_.idempotency_window;
    q.max_payload_bytes = options_.max_payload_bytes + 4096;
    if (Status s = broker_.DeclareQueue(EndpointQueue(ep.id), q); !s.ok()) {
      return done(s);
    }
    auto r = DurableExec("INSERT INTO webhook_endpoints(seq, id, body) VALUES(?, ?, ?)",
                         {SeqOf(ep.id), ep.id, StoredEndpoint(ep).dump()});
    if (!r.ok()) {
      return done(r.status());
    }
    Remember(ep);
    if (!verify) {
      return done(Created{ep, ""});
    }
    RunVerification(ep, std::move(done));
  }

  void VerifyEndpoint(std::string_view id, std::function<void(StatusOr<Created>)> done) override {
    auto ep = GetEndpoint(id);
    if (!ep.ok()) {
      return done(ep.status());
    }
    RunVerification(*ep, std::move(done));
  }

  StatusOr<Endpoint> UpdateEndpoint(std::string_view id,
                                    const std::function<Status(Endpoint&)>& change) override {
    std::lock_guard writes(endpoint_writes_mu_);
    EVO_ASSIGN_OR_RETURN(const Endpoint current, GetEndpoint(id));
    Endpoint ep = current;
    EVO_RETURN_IF_ERROR(change(ep));
    EVO_RETURN_IF_ERROR(CheckEndpoint(ep));
    std::vector<std::string_view> fields(kConfigFields.begin(), kConfigFields.end());
    // The state only when the change moved it (PATCH "enabled"): otherwise a disable the
    // dispatcher wrote meanwhile stands. Verification is not changed here.
    if (current.state != EndpointState::kUnverified && ep.state != EndpointState::kUnverified &&
        ep.state != current.state) {
      if (ep.state == EndpointState::kActive) {
        ep.disabled_reason.clear();
        ep.failing_since_ms = 0;
      }
      fields.insert(fields.end(), kStateFields.begin(), kStateFields.end());
    }
    ep.updated_ms = NowMs();
    EVO_RETURN_IF_ERROR(WriteFields(ep, fields, /*durable=*/true));
    return GetEndpoint(id);
  }

  StatusOr<Endpoint> UpdateEndpoint(const Endpoint& endpoint) override {
    return UpdateEndpoint(endpoint.id, [&endpoint](Endpoint& ep) {
      ep.url = endpoint.url;
      ep.description = endpoint.description;
      ep.event_types = endpoint.event_types;
      ep.filter = endpoint.filter;
      ep.rate_limit_per_second = endpoint.rate_limit_per_second;
      ep.max_concurrency = endpoint.max_concurrency;
      ep.ordered = endpoint.ordered;
      ep.headers = endpoint.headers;
      ep.state = endpoint.state;
      ep.disabled_reason = endpoint.disabled_reason;
      return OkStatus();
    });
  }

  StatusOr<Endpoint> GetEndpoint(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto it = endpoints_.find(std::string(id));
    if (it == endpoints_.end()) {
      return NotFoundError(fmt::format("no endpoint '{}'", id));
    }
    return it->second;
  }

  StatusOr<std::vector<Endpoint>> ListEndpoints(const Page& page) override {
    std::vector<Endpoint> out;
    const int64_t after = page.after.empty() ? 0 : SeqOf(page.after);
    std::lock_guard lock(mu_);
    for (const auto& [seq, id] : endpoint_order_) {
      if (seq <= after) {
        continue;
      }
      if (out.size() == page.size) {
        break;
      }
      out.push_back(endpoints_.at(id));
    }
    return out;
  }

  Status DeleteEndpoint(std::string_view id) override {
    std::string deleted;
    {
      std::lock_guard writes(endpoint_writes_mu_);
      EVO_ASSIGN_OR_RETURN(Endpoint ep, GetEndpoint(id));
      // The row and a tombstone, from which the sweep purges its attempts and delivery rows.
      EVO_RETURN_IF_ERROR(db_.Transaction(
          [&](store::Executor& tx) -> Status {
            EVO_RETURN_IF_ERROR(
                tx.Exec("DELETE FROM webhook_endpoints WHERE id = ?", {ep.id}).status());
            return tx
                .Exec(
                    "INSERT OR REPLACE INTO webhook_deleted_endpoints(id, deleted_ms) "
                    "VALUES(?, ?)",
                    {ep.id, NowMs()})
                .status();
          },
          store::TxMode::kDurable));
      {
        std::lock_guard lock(mu_);
        endpoints_.erase(ep.id);
        endpoint_order_.erase(SeqOf(ep.id));
      }
      dispatcher_->Update(ep.id, std::nullopt);
      deleted = ep.id;
    }
    const Status s = broker_.DeleteQueue(EndpointQueue(deleted));
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      spdlog::warn("webhooks: deleting the queue of {}: {}", deleted, s.ToString());
    }
    return OkStatus();
  }

  StatusOr<Endpoint> RotateSecret(std::string_view id, std::string secret) override {
    if (secret.empty()) {
      secret = GenerateSecret();
    } else if (!DecodeSecret(secret).ok()) {
      return InvalidArgumentError("secret must be whsec_ followed by base64 of 24..64 bytes")
          .With(kPayloadPointer, "#/secret");
    }
    std::lock_guard writes(endpoint_writes_mu_);
    EVO_ASSIGN_OR_RETURN(Endpoint ep, GetEndpoint(id));
    ep.previous_secret = ep.secret;
    ep.previous_secret_until_ms = NowMs() + options_.secret_grace.count();
    ep.secret = std::move(secret);
    if (ep.asymmetric) {
      ep.previous_signing_key = ep.signing_key;
      ep.signing_key = GenerateEd25519KeyPair().signing_key;
    }
    ep.updated_ms = NowMs();
    EVO_RETURN_IF_ERROR(
        WriteFields(ep, {kSecretFields.begin(), kSecretFields.end()}, /*durable=*/true));
    return GetEndpoint(id);
  }

  // ---- messages ----

  void Publish(std::string application_id, std::string event_type, json payload,
               std::string event_id, std::function<void(StatusOr<std::string>)> done) override {
    if (!application_id.empty()) {
      auto app = GetApplication(application_id);
      if (!app.ok()) {
        return done(Status(app.status()).With(kPayloadPointer, "#/applicationId"));
      }
      application_id = app->id;  // a uid names it too
    }
    std::shared_ptr<const http::JsonSchema> schema;
    {
      std::lock_guard lock(mu_);
      auto it = types_.find(event_type);
      if (it == types_.end()) {
        return done(FailedPreconditionError(fmt::format("unknown event type '{}'", event_type))
                        .With(kPayloadReason, "UNKNOWN_EVENT_TYPE")
                        .With(kPayloadPointer, "#/eventType")
                        .With(kPayloadHttpStatus, "422"));
      }
      schema = it->second.compiled;
    }
    if (schema) {
      const auto errors = schema->Validate(payload, 10);
      if (!errors.empty()) {
        Status s = FailedPreconditionError(
                       fmt::format("the payload does not match the schema of '{}': {} at {}",
                                   event_type, errors[0].message, errors[0].pointer))
                       .With(kPayloadReason, "SCHEMA_MISMATCH")
                       .With(kPayloadHttpStatus, "422");
        // The first failing location, in the request's terms.
        s.SetPayload(kPayloadPointer, "#/payload" + errors[0].pointer.substr(
                                                        errors[0].pointer.rfind('#') == 0 ? 1 : 0));
        return done(s);
      }
    }
    std::string payload_text = payload.dump(-1, ' ', false, json::error_handler_t::replace);
    if (payload_text.size() > options_.max_payload_bytes) {
      return done(InvalidArgumentError(fmt::format("payload is {} bytes; at most {}",
                                                   payload_text.size(), options_.max_payload_bytes))
                      .With(kPayloadPointer, "#/payload")
                      .With(kPayloadHttpStatus, "413"));
    }
    const int64_t now = NowMs();
    const std::string key = event_id.empty() ? std::string() : application_id + '\n' + event_id;
    const std::string fingerprint = application_id + '\n' + event_type + '\n' + payload_text;
    if (!key.empty()) {
      // The same key with another body is a client bug: say so rather than answer the
      // first message's id for a different event (422, as for every idempotent create).
      if (Status s = ClaimKey(key, fingerprint, application_id, event_id, now); !s.ok()) {
        return done(s);
      }
    }
    json job = {{"t", event_type}, {"e", event_id}, {"c", now}, {"a", application_id}};
    // The payload goes in as raw JSON text, not re-parsed: splice it.
    std::string text = job.dump();
    text.pop_back();
    text += ",\"p\":";
    text += payload_text;
    text += '}';
    queue::NewMessage m;
    m.payload = std::move(text);
    m.dedupe_key = key;
    broker_.EnqueueAsync(kFanoutQueue, {std::move(m)},
                         [this, key, fingerprint, now,
                          done = std::move(done)](StatusOr<std::vector<queue::MessageId>> r) {
                           if (!r.ok()) {
                             if (!key.empty()) {
                               ReleaseKey(key, fingerprint, now);
                             }
                             return done(r.status());
                           }
                           done(fmt::format("msg_{}", (*r)[0]));
                         });
  }

  StatusOr<Message> GetMessage(std::string_view id) override {
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        db_.Query("SELECT id, event_type, event_id, payload, created_ms, application_id FROM "
                  "webhook_messages WHERE seq = ?",
                  {SeqOf(id)}));
    if (rows.empty() || Text(rows[0][0]) != id) {
      return NotFoundError(fmt::format("no message '{}' (yet: fan-out takes milliseconds)", id));
    }
    return ToMessage(rows.rows[0]);
  }

  StatusOr<std::vector<Message>> ListMessages(const Page& page,
                                              std::string_view event_type) override {
    const int64_t after = page.after.empty() ? 0 : SeqOf(page.after);
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        event_type.empty()
            ? db_.Query("SELECT id, event_type, event_id, payload, created_ms, application_id FROM "
                        "webhook_messages WHERE seq > ? ORDER BY seq LIMIT ?",
                        {after, static_cast<int64_t>(page.size)})
            : db_.Query("SELECT id, event_type, event_id, payload, created_ms, application_id FROM "
                        "webhook_messages WHERE event_type = ? AND seq > ? ORDER BY seq LIMIT ?",
                        {std::string(event_type), after, static_cast<int64_t>(page.size)}));
    std::vector<Message> out;
    for (const store::Row& r : rows.rows) {
      out.push_back(ToMessage(r));
    }
    return out;
  }

  StatusOr<std::vector<Attempt>> ListAttempts(std::string_view endpoint_id,
                                              std::string_view message_id,
                                              const Page& page) override {
    const int64_t after = page.after.empty() ? 0 : SeqOf(page.after);
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        !endpoint_id.empty()
            ? db_.Query("SELECT seq, body FROM webhook_attempts WHERE endpoint_id = ? AND seq > "
                        "? ORDER BY seq LIMIT ?",
                        {std::string(endpoint_id), after, static_cast<int64_t>(page.size)})
            : db_.Query("SELECT seq, body FROM webhook_attempts WHERE message_id = ? AND seq > ? "
                        "ORDER BY seq LIMIT ?",
                        {std::string(message_id), after, static_cast<int64_t>(page.size)}));
    std::vector<Attempt> out;
    for (const store::Row& r : rows.rows) {
      auto a = AttemptFromStored(Int(r[0]), Text(r[1]));
      if (!a.ok()) {
        // A damaged row is listed as such (the page and its cursor stay whole) and logged.
        spdlog::error("webhooks: {}", a.status().ToString());
        Attempt unreadable;
        unreadable.id = fmt::format("att_{}", Int(r[0]));
        unreadable.outcome = "unreadable";
        unreadable.error = std::string(a.status().message());
        out.push_back(std::move(unreadable));
        continue;
      }
      out.push_back(*std::move(a));
    }
    return out;
  }

  Status Replay(std::string_view endpoint_id, std::string_view message_id) override {
    EVO_ASSIGN_OR_RETURN(Endpoint ep, GetEndpoint(endpoint_id));
    EVO_ASSIGN_OR_RETURN(Message m, GetMessage(message_id));
    // A new dedupe key: a replay is a new delivery even when the first one is still queued.
    EVO_RETURN_IF_ERROR(EnqueueDeliveries(ep, {m}, fmt::format("replay-{}", NowMs())));
    return OkStatus();
  }

  StatusOr<int64_t> Recover(std::string_view endpoint_id, int64_t since_ms) override {
    EVO_ASSIGN_OR_RETURN(Endpoint ep, GetEndpoint(endpoint_id));
    int64_t total = 0;
    int64_t after = 0;
    const std::string tag = fmt::format("recover-{}", NowMs());
    while (true) {
      EVO_ASSIGN_OR_RETURN(
          store::Rows rows,
          db_.Query("SELECT m.seq, m.id, m.event_type, m.event_id, m.payload, m.created_ms, "
                    "m.application_id FROM "
                    "webhook_deliveries d JOIN webhook_messages m ON m.seq = d.message_seq "
                    "WHERE d.endpoint_id = ? AND d.state IN ('failed', 'disabled') AND "
                    "d.updated_ms >= ? AND d.message_seq > ? ORDER BY d.message_seq LIMIT 500",
                    {ep.id, since_ms, after}));
      if (rows.empty()) {
        break;
      }
      std::vector<Message> batch;
      for (const store::Row& r : rows.rows) {
        after = Int(r[0]);
        store::Row tail(r.begin() + 1, r.end());
        batch.push_back(ToMessage(tail));
      }
      EVO_RETURN_IF_ERROR(EnqueueDeliveries(ep, batch, tag));
      total += static_cast<int64_t>(batch.size());
    }
    return total;
  }

 private:
  struct TypeEntry {
    EventType type;
    std::shared_ptr<const http::JsonSchema> compiled;
  };

  int64_t NowMs() const { return UnixMillis(clock_.Now()); }

  static Status CheckSchema(const json& schema) {
    if (schema.is_null()) {
      return OkStatus();
    }
    auto compiled = http::JsonSchema::Compile(schema);
    if (!compiled.ok()) {
      return InvalidArgumentError(fmt::format("schema: {}", compiled.status().message()))
          .With(kPayloadPointer, "#/schema");
    }
    return OkStatus();
  }

  Status CheckEndpoint(const Endpoint& ep) {
    auto url = outbound::ParseUrl(ep.url);
    if (!url.ok()) {
      return InvalidArgumentError(fmt::format("url: {}", url.status().message()))
          .With(kPayloadPointer, "#/url");
    }
    if (Status s = outbound::CheckUrl(*url, options_.ssrf); !s.ok()) {
      return InvalidArgumentError(fmt::format("url: {}", s.message()))
          .With(kPayloadPointer, "#/url")
          .With(kPayloadReason, "SSRF_BLOCKED");
    }
    for (size_t i = 0; i < ep.event_types.size(); ++i) {
      std::lock_guard lock(mu_);
      if (!types_.count(ep.event_types[i]) && ep.event_types[i] != kDisabledEventType) {
        return InvalidArgumentError(fmt::format("unknown event type '{}'", ep.event_types[i]))
            .With(kPayloadPointer, fmt::format("#/eventTypes/{}", i));
      }
    }
    EVO_RETURN_IF_ERROR(Filter::Compile(ep.filter).status());
    if (!ep.application_id.empty()) {
      if (Status s = GetApplication(ep.application_id).status(); !s.ok()) {
        return Status(s).With(kPayloadPointer, "#/applicationId");
      }
    }
    if (!ep.secret.empty() && !DecodeSecret(ep.secret).ok()) {
      return InvalidArgumentError("secret must be whsec_ followed by base64 of 24..64 bytes")
          .With(kPayloadPointer, "#/secret");
    }
    if (ep.rate_limit_per_second < 0 || ep.rate_limit_per_second > 100'000) {
      return InvalidArgumentError("rateLimitPerSecond must be 0..100000")
          .With(kPayloadPointer, "#/rateLimitPerSecond");
    }
    if (ep.max_concurrency < 1 || ep.max_concurrency > 1000) {
      return InvalidArgumentError("maxConcurrency must be 1..1000")
          .With(kPayloadPointer, "#/maxConcurrency");
    }
    if (ep.headers.size() > 32) {
      return InvalidArgumentError("at most 32 headers").With(kPayloadPointer, "#/headers");
    }
    if (ep.description.size() > 1024) {
      return InvalidArgumentError("description is at most 1024 bytes")
          .With(kPayloadPointer, "#/description");
    }
    return OkStatus();
  }

  Status LoadApplications() {
    EVO_ASSIGN_OR_RETURN(store::Rows rows, db_.Query("SELECT id, name, uid, created_ms FROM "
                                                     "webhook_applications"));
    std::lock_guard lock(mu_);
    for (const store::Row& r : rows.rows) {
      Application app{Text(r[0]), Text(r[1]), Text(r[2]), Int(r[3])};
      apps_[app.id] = app;
    }
    return OkStatus();
  }

  Status LoadEventTypes() {
    EVO_ASSIGN_OR_RETURN(store::Rows rows,
                         db_.Query("SELECT name, description, schema, created_ms, updated_ms FROM "
                                   "webhook_event_types"));
    std::lock_guard lock(mu_);
    for (const store::Row& r : rows.rows) {
      EventType t;
      t.name = Text(r[0]);
      t.description = Text(r[1]);
      const std::string schema = Text(r[2]);
      t.schema = schema.empty() ? json(nullptr) : json::parse(schema, nullptr, false);
      t.created_ms = Int(r[3]);
      t.updated_ms = Int(r[4]);
      types_[t.name] = Entry(t);
    }
    if (!types_.count(std::string(kDisabledEventType))) {
      EventType t;
      t.name = std::string(kDisabledEventType);
      t.description = "evo disabled an endpoint (410 Gone, or failing for too long).";
      t.created_ms = t.updated_ms = NowMs();
      EVO_RETURN_IF_ERROR(db_.Exec("INSERT OR IGNORE INTO webhook_event_types(name, description, "
                                   "schema, created_ms, updated_ms) VALUES(?, ?, NULL, ?, ?)",
                                   {t.name, t.description, t.created_ms, t.updated_ms})
                              .status());
      types_[t.name] = Entry(t);
    }
    return OkStatus();
  }

  static TypeEntry Entry(const EventType& t) {
    TypeEntry e{t, nullptr};
    if (!t.schema.is_null()) {
      auto compiled = http::JsonSchema::Compile(t.schema);
      if (compiled.ok()) {
        e.compiled = std::make_shared<const http::JsonSchema>(*std::move(compiled));
      }
    }
    return e;
  }

  Status LoadEndpoints() {
    EVO_ASSIGN_OR_RETURN(store::Rows rows, db_.Query("SELECT body FROM webhook_endpoints"));
    for (const store::Row& r : rows.rows) {
      auto ep = EndpointFromStored(json::parse(Text(r[0]), nullptr, false));
      if (!ep.ok()) {
        spdlog::error("webhooks: a stored endpoint cannot be read: {}", ep.status().ToString());
        continue;
      }
      std::lock_guard lock(mu_);
      endpoints_[ep->id] = *ep;
      endpoint_order_[SeqOf(ep->id)] = ep->id;
    }
    return OkStatus();
  }

  void Remember(const Endpoint& ep) {
    {
      std::lock_guard lock(mu_);
      endpoints_[ep.id] = ep;
      endpoint_order_[SeqOf(ep.id)] = ep.id;
    }
    if (dispatcher_) {
      dispatcher_->Update(ep.id, ep);
    }
  }

  // One statement in a transaction whose commit is synced before it returns: metadata a
  // caller is told is stored (endpoints, event types, applications, rotations).
  StatusOr<store::ExecResult> DurableExec(std::string_view sql, const store::Params& params) {
    store::ExecResult result;
    EVO_RETURN_IF_ERROR(db_.Transaction(
        [&](store::Executor& tx) -> Status {
          EVO_ASSIGN_OR_RETURN(result, tx.Exec(sql, params));
          return OkStatus();
        },
        store::TxMode::kDurable));
    return result;
  }

  // Stores `fields` (StoredEndpoint keys) of `changed`, and only those, in its row; then the
  // same fields into the cached endpoint, which the dispatcher is given. NotFound when the row
  // is gone (deleted meanwhile): nothing is re-created. REQUIRES: endpoint_writes_mu_ held,
  // so that the cache takes the writes in the order the rows did.
  Status WriteFields(const Endpoint& changed, const std::vector<std::string_view>& fields,
                     bool durable) {
    const json stored = StoredEndpoint(changed);
    std::string sql = "UPDATE webhook_endpoints SET body = json_set(body";
    store::Params params;
    for (std::string_view field : fields) {
      fmt::format_to(std::back_inserter(sql), ", '$.{}', json(?)", field);
      const auto it = stored.find(field);
      params.emplace_back(it == stored.end()
                              ? std::string("null")
                              : it->dump(-1, ' ', false, json::error_handler_t::replace));
    }
    sql += ") WHERE id = ?";
    params.emplace_back(changed.id);
    EVO_ASSIGN_OR_RETURN(store::ExecResult r,
                         durable ? DurableExec(sql, params) : db_.Exec(sql, params));
    if (r.rows_affected == 0) {
      return NotFoundError(fmt::format("no endpoint '{}'", changed.id));
    }
    Endpoint now;
    {
      std::lock_guard lock(mu_);
      auto it = endpoints_.find(changed.id);
      if (it == endpoints_.end()) {
        return NotFoundError(fmt::format("no endpoint '{}'", changed.id));
      }
      json cached = StoredEndpoint(it->second);
      for (std::string_view field : fields) {
        const auto f = stored.find(field);
        cached[std::string(field)] = f == stored.end() ? json() : *f;
      }
      auto merged = EndpointFromStored(cached);
      if (!merged.ok()) {
        return merged.status();
      }
      it->second = *std::move(merged);
      now = it->second;
    }
    dispatcher_->Update(now.id, now);
    return OkStatus();
  }

  // Recorder thread.
  void Disable(const std::string& id, const std::string& reason) {
    Endpoint ep;
    {
      std::lock_guard writes(endpoint_writes_mu_);
      auto current = GetEndpoint(id);
      if (!current.ok() || current->state == EndpointState::kDisabled) {
        return;
      }
      ep = *std::move(current);
      ep.state = EndpointState::kDisabled;
      ep.disabled_reason = reason;
      ep.updated_ms = NowMs();
      if (Status s = WriteFields(ep, {"state", "enabled", "disabledReason", "updatedMs"},
                                 /*durable=*/false);
          !s.ok()) {
        if (s.code() != StatusCode::kNotFound) {  // NotFound: deleted meanwhile
          spdlog::error("webhooks: disabling {}: {}", id, s.ToString());
        }
        return;
      }
    }
    spdlog::warn("webhooks: endpoint {} ({}) disabled: {}", id, ep.url, reason);
    // The operational event, to whoever subscribed to it.
    Publish(ep.application_id, std::string(kDisabledEventType),
            {{"endpointId", id},
             {"url", ep.url},
             {"reason", reason},
             {"failingSince",
              ep.failing_since_ms ? json(FormatUnixMillis(ep.failing_since_ms)) : json()}},
            "", [](const StatusOr<std::string>&) {});
  }

  // Recorder thread.
  void SetFailing(const std::string& id, int64_t since) {
    std::lock_guard writes(endpoint_writes_mu_);
    auto ep = GetEndpoint(id);
    if (!ep.ok() || ep->failing_since_ms == since) {
      return;
    }
    ep->failing_since_ms = since;
    if (Status s = WriteFields(*ep, {"failingSinceMs"}, /*durable=*/false);
        !s.ok() && s.code() != StatusCode::kNotFound) {
      spdlog::warn("webhooks: recording the failing streak of {}: {}", id, s.ToString());
    }
  }

  void RunVerification(const Endpoint& ep, std::function<void(StatusOr<Created>)> done) {
    const std::string challenge = RandomChallenge();
    const json body = {{"type", "webhook.verification"}, {"challenge", challenge}};
    outbound::Request request = SignedRequest(ep, fmt::format("msg_verify_{}", challenge),
                                              body.dump(), NowMs(), options_.verify_timeout);
    client_->Send(std::move(request), [this, id = ep.id, challenge,
                                       done = std::move(done)](outbound::Response r) mutable {
      std::string error;
      if (!r.error.ok()) {
        error = r.error.ToString();
      } else if (r.status < 200 || r.status > 299) {
        error = fmt::format("the endpoint answered HTTP {}", r.status);
      } else {
        // Checked reads only: this runs on the outbound client's thread, and the answer is
        // whatever the receiver sent (a number, null, not JSON at all).
        const json answer = json::parse(r.body, nullptr, false);
        const auto echoed = answer.is_object() ? answer.find("challenge") : answer.end();
        if (!answer.is_object() || echoed == answer.end() || !echoed->is_string() ||
            echoed->get_ref<const std::string&>() != challenge) {
          error = "the endpoint did not echo the challenge ({\"challenge\": \"...\"})";
        }
      }
      // The state write (a durable commit) is the recorder thread's, not the client's.
      RunOnRecorder([this, id, error, done = std::move(done)] {
        std::lock_guard writes(endpoint_writes_mu_);
        auto ep = GetEndpoint(id);
        if (!ep.ok()) {
          return done(ep.status());
        }
        if (error.empty() && ep->state == EndpointState::kUnverified) {
          ep->state = EndpointState::kActive;
          ep->updated_ms = NowMs();
          if (Status s = WriteFields(*ep, {"state", "enabled", "updatedMs"}, /*durable=*/true);
              !s.ok()) {
            return done(s);
          }
        }
        done(Created{*ep, error});
      });
    });
  }

  // ---- idempotency keys ----

  // Claims `key` (application + '\n' + event id) for `fingerprint` at `now`, atomically:
  // of concurrent publishes with one key, the first to claim it decides, and every other one
  // with another event gets 422. A use older than the idempotency window does not count.
  Status ClaimKey(const std::string& key, const std::string& fingerprint,
                  const std::string& application_id, const std::string& event_id, int64_t now) {
    const int64_t window_start = now - options_.idempotency_window.count();
    std::optional<KeyUse> stored;
    bool known = false;
    {
      std::lock_guard lock(keys_mu_);
      auto it = recent_keys_.find(key);
      known = it != recent_keys_.end() && it->second.ms >= window_start;
    }
    if (!known) {
      // Older than this process (or evicted): the fanned-out message, within the window.
      auto rows = db_.Query(
          "SELECT event_type, payload, created_ms FROM webhook_messages WHERE event_id = ? AND "
          "coalesce(application_id, '') = ? AND created_ms >= ? ORDER BY seq LIMIT 1",
          {event_id, application_id, window_start});
      if (rows.ok() && !rows->empty()) {
        stored =
            KeyUse{application_id + '\n' + Text(rows->rows[0][0]) + '\n' + Text(rows->rows[0][1]),
                   Int(rows->rows[0][2])};
      }
    }
    std::lock_guard lock(keys_mu_);
    auto [it, inserted] = recent_keys_.try_emplace(key);
    if (inserted || it->second.ms < window_start) {
      it->second = stored.value_or(KeyUse{fingerprint, now});
      key_order_.push_back(key);
      while (key_order_.size() > kRecentKeys) {
        // The oldest claims: long fanned out, so found in the store from now on.
        recent_keys_.erase(key_order_.front());
        key_order_.pop_front();
      }
    }
    if (it->second.fingerprint != fingerprint) {
      return FailedPreconditionError(
                 "this Idempotency-Key (eventId) was used with a different event")
          .With(kPayloadReason, "IDEMPOTENCY_KEY_REUSED")
          .With(kPayloadHttpStatus, "422");
    }
    return OkStatus();
  }

  // The publish that claimed `key` at `claimed_ms` was not stored: the key is free again.
  void ReleaseKey(const std::string& key, const std::string& fingerprint, int64_t claimed_ms) {
    std::lock_guard lock(keys_mu_);
    auto it = recent_keys_.find(key);
    if (it != recent_keys_.end() && it->second.fingerprint == fingerprint &&
        it->second.ms == claimed_ms) {
      recent_keys_.erase(it);
    }
  }

  // The delivery body of a stored message: from the cache the fan-out fills, else read back.
  StatusOr<std::shared_ptr<const std::string>> BodyOf(std::string_view message_id) {
    const int64_t seq = SeqOf(message_id);
    if (auto body = bodies_.Find(seq)) {
      return body;
    }
    EVO_ASSIGN_OR_RETURN(
        store::Rows rows,
        db_.Query("SELECT id, event_type, payload, created_ms FROM webhook_messages WHERE seq = ?",
                  {seq}));
    if (rows.empty() || Text(rows[0][0]) != message_id) {
      return NotFoundError(fmt::format("message '{}' is not stored", message_id));
    }
    auto body = std::make_shared<const std::string>(
        DeliveryBody(Text(rows[0][1]), Int(rows[0][3]), Text(rows[0][2])));
    bodies_.Put(seq, body);
    return body;
  }

  static Message ToMessage(const store::Row& r) {
    Message m;
    m.id = Text(r[0]);
    m.event_type = Text(r[1]);
    m.event_id = Text(r[2]);
    m.payload = json::parse(Text(r[3]), nullptr, false);
    m.created_ms = Int(r[4]);
    m.application_id = r.size() > 5 ? Text(r[5]) : std::string();
    return m;
  }

  // Enqueues one delivery per message on the endpoint's queue; `dedupe_tag` distinguishes a
  // replay from the original delivery.
  Status EnqueueDeliveries(const Endpoint& ep, const std::vector<Message>& messages,
                           const std::string& dedupe_tag) {
    EVO_RETURN_IF_ERROR(
        broker_.Enqueue(EndpointQueue(ep.id), DeliveryJobs(ep, messages, dedupe_tag)).status());
    dispatcher_->Wake(ep.id);
    return OkStatus();
  }

  // One queue message per delivery, holding only the message id: the body is the stored
  // message's (BodyOf), so a message fanned out to N endpoints is stored once, not N times.
  static std::vector<queue::NewMessage> DeliveryJobs(const Endpoint& ep,
                                                     const std::vector<Message>& messages,
                                                     const std::string& dedupe_tag) {
    std::vector<queue::NewMessage> jobs;
    jobs.reserve(messages.size());
    for (const Message& m : messages) {
      queue::NewMessage job;
      job.payload = m.id;
      job.dedupe_key = dedupe_tag.empty() ? m.id : m.id + "/" + dedupe_tag;
      if (ep.ordered) {
        job.ordering_key = "o";
      }
      jobs.push_back(std::move(job));
    }
    return jobs;
  }

  // ---- fan-out ----

  void FanoutLoop() {
    while (!stopped_.load()) {
      // The boundary nothing read from the queue crosses: whatever a batch throws is logged
      // and the loop goes on (FanOutBatch dead-letters the job that threw).
      try {
        FanOutBatch();
      } catch (const std::exception& e) {
        spdlog::error("webhooks: fan-out: {}", e.what());
        clock_.SleepFor(milliseconds(200));
      } catch (...) {
        spdlog::error("webhooks: fan-out: unknown exception");
        clock_.SleepFor(milliseconds(200));
      }
    }
  }

  void FanOutBatch() {
    // A batch takes milliseconds; after a crash, the next process fans it out again once
    // this lease runs out.
    auto leases = broker_.Lease(kFanoutQueue, {.max = kFanoutBatch,
                                               .visibility = std::chrono::seconds(10),
                                               .wait = std::chrono::milliseconds(200)});
    if (!leases.ok()) {
      if (!stopped_.load()) {
        spdlog::warn("webhooks: fan-out lease: {}", leases.status().ToString());
        clock_.SleepFor(milliseconds(200));
      }
      return;
    }
    if (leases->empty()) {
      return;
    }
    std::string thrown;
    const Status s = FanOutCatching(*leases, thrown);
    if (!thrown.empty()) {
      // One job makes the batch throw: fan each out alone, and dead-letter the one that
      // throws again with what it threw.
      for (const queue::Leased& l : *leases) {
        std::string one_thrown;
        const Status one = FanOutCatching({l}, one_thrown);
        if (!one_thrown.empty()) {
          spdlog::error("webhooks: fan-out job {} dead-lettered: {}", l.id, one_thrown);
          broker_.FailAsync(kFanoutQueue, l.lease_id, "fan-out failed: " + one_thrown,
                            [](const StatusOr<bool>&) {});
        } else {
          Settle({l}, one);
        }
      }
      return;
    }
    Settle(*leases, s);
  }

  // FanOut, with an exception turned into `thrown` (and an Internal status).
  Status FanOutCatching(const std::vector<queue::Leased>& leases, std::string& thrown) {
    try {
      return FanOut(leases);
    } catch (const std::exception& e) {
      thrown = e.what();
    } catch (...) {
      thrown = "unknown exception";
    }
    if (thrown.empty()) {
      thrown = "exception without a message";
    }
    return InternalError(thrown);
  }

  // Acks the fanned-out leases, or hands them back to be retried when `s` failed.
  void Settle(const std::vector<queue::Leased>& leases, const Status& s) {
    if (!s.ok()) {
      spdlog::error("webhooks: fan-out of {} messages failed (retried): {}", leases.size(),
                    s.ToString());
      for (const queue::Leased& l : leases) {
        broker_.NackAsync(kFanoutQueue, l.lease_id,
                          {.delay = std::chrono::seconds(1), .error = s.ToString()},
                          [](const StatusOr<bool>&) {});
      }
      return;
    }
    std::vector<std::string> ids;
    ids.reserve(leases.size());
    for (const queue::Leased& l : leases) {
      ids.push_back(l.lease_id);
    }
    // Not waited for: the next lease shares its group commit. Lost, the batch is fanned out
    // again after its lease runs out, which stores and enqueues nothing twice.
    broker_.AckBatchAsync(kFanoutQueue, ids, [](const StatusOr<std::vector<Status>>& acked) {
      if (!acked.ok()) {
        spdlog::warn("webhooks: fan-out ack: {}", acked.status().ToString());
      }
    });
  }

  // Stores the messages and their delivery rows, then enqueues one delivery per matching
  // endpoint. Repeating it (after a crash) stores and enqueues nothing twice.
  // A fan-out job as Publish writes it: {"t": type, "e"?: event id, "a"?: application id,
  // "c"?: created (unix ms), "p"?: payload}. Anything else (a job written by hand below the
  // API, a damaged row) is InvalidArgument naming what is wrong; nothing here throws.
  static StatusOr<Message> ReadFanoutJob(const queue::Leased& l) {
    const json job = json::parse(l.payload, nullptr, false);
    if (!job.is_object()) {
      return InvalidArgumentError("a fan-out job is a JSON object");
    }
    auto text = [&job](const char* key, bool required) -> StatusOr<std::string> {
      const auto it = job.find(key);
      if (it == job.end() || it->is_null()) {
        if (required) {
          return InvalidArgumentError(fmt::format("a fan-out job needs \"{}\"", key));
        }
        return std::string();
      }
      if (!it->is_string()) {
        return InvalidArgumentError(fmt::format("\"{}\" of a fan-out job is a string", key));
      }
      return it->get<std::string>();
    };
    Message m;
    m.id = fmt::format("msg_{}", l.id);
    EVO_ASSIGN_OR_RETURN(m.event_type, text("t", true));
    EVO_ASSIGN_OR_RETURN(m.event_id, text("e", false));
    EVO_ASSIGN_OR_RETURN(m.application_id, text("a", false));
    if (const auto c = job.find("c"); c != job.end() && !c->is_null()) {
      if (!c->is_number_integer()) {
        return InvalidArgumentError("\"c\" of a fan-out job is an integer");
      }
      m.created_ms = c->get<int64_t>();
    }
    if (const auto p = job.find("p"); p != job.end()) {
      m.payload = *p;
    }
    return m;
  }

  Status FanOut(const std::vector<queue::Leased>& leases) {
    std::vector<Message> messages;
    for (const queue::Leased& l : leases) {
      auto m = ReadFanoutJob(l);
      if (!m.ok()) {
        // Poison: dead-lettered with the reason (visible to `evo queue dlq webhooks.fanout`),
        // so that it neither stops the loop nor comes back.
        spdlog::error("webhooks: fan-out job {} dead-lettered: {}", l.id, m.status().message());
        broker_.FailAsync(kFanoutQueue, l.lease_id, std::string(m.status().message()),
                          [](const StatusOr<bool>&) {});
        continue;
      }
      messages.push_back(*std::move(m));
    }
    // Each payload's text, serialised once for the stored row and the delivery body.
    std::vector<std::string> payloads;
    payloads.reserve(messages.size());
    for (const Message& m : messages) {
      payloads.push_back(m.payload.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    std::vector<Endpoint> endpoints;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, ep] : endpoints_) {
        if (ep.state != EndpointState::kUnverified) {
          endpoints.push_back(ep);
        }
      }
    }
    // Which endpoint gets which message.
    std::map<std::string, std::vector<size_t>> plan;
    const int64_t now = NowMs();
    for (const Endpoint& ep : endpoints) {
      auto filter = Filter::Compile(ep.filter);
      for (size_t i = 0; i < messages.size(); ++i) {
        const Message& m = messages[i];
        if (ep.application_id != m.application_id) {
          continue;
        }
        const bool type_ok = ep.event_types.empty()
                                 ? m.event_type != kDisabledEventType
                                 : std::find(ep.event_types.begin(), ep.event_types.end(),
                                             m.event_type) != ep.event_types.end();
        if (type_ok && (!filter.ok() || filter->Matches(m.payload))) {
          plan[ep.id].push_back(i);
        }
      }
    }
    // The dispatcher is about to need every body, once per endpoint: it finds them here, not
    // in the rows stored below, which are committed at the same time as the deliveries (two
    // files, two syncs in parallel rather than one after the other). Should a power loss
    // keep the deliveries and lose the rows, the batch is not acknowledged either: it is
    // fanned out again, and the deliveries wait for their rows meanwhile (BodyOf answers
    // NotFound; the dispatcher tries again each second without using up an attempt).
    for (size_t i = 0; i < messages.size(); ++i) {
      const Message& m = messages[i];
      bodies_.Put(SeqOf(m.id), std::make_shared<const std::string>(
                                   DeliveryBody(m.event_type, m.created_ms, payloads[i])));
    }
    // Every endpoint's deliveries are enqueued at once, so they share one group commit.
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    Status failure;
    for (const Endpoint& ep : endpoints) {
      auto it = plan.find(ep.id);
      if (it == plan.end() || ep.state != EndpointState::kActive) {
        continue;  // a disabled endpoint's deliveries wait in webhook_deliveries for recover
      }
      std::vector<Message> batch;
      batch.reserve(it->second.size());
      for (size_t i : it->second) {
        batch.push_back(messages[i]);
      }
      {
        std::lock_guard lock(mu);
        ++left;
      }
      broker_.EnqueueAsync(EndpointQueue(ep.id), DeliveryJobs(ep, batch, ""),
                           [&, id = ep.id](const StatusOr<std::vector<queue::MessageId>>& r) {
                             if (r.ok()) {
                               dispatcher_->Wake(id);
                             }
                             std::lock_guard lock(mu);
                             // NotFound: the endpoint was deleted meanwhile.
                             if (!r.ok() && r.status().code() != StatusCode::kNotFound) {
                               failure = r.status();
                             }
                             if (--left == 0) {
                               cv.notify_one();
                             }
                           });
    }
    const Status stored = db_.Transaction(
        [&](store::Executor& tx) -> Status {
          for (size_t i = 0; i < messages.size(); ++i) {
            const Message& m = messages[i];
            EVO_RETURN_IF_ERROR(
                tx.Exec("INSERT OR IGNORE INTO webhook_messages(seq, id, event_type, event_id, "
                        "payload, created_ms, application_id) VALUES(?, ?, ?, ?, ?, ?, ?)",
                        {SeqOf(m.id), m.id, m.event_type,
                         m.event_id.empty() ? store::Value(nullptr) : store::Value(m.event_id),
                         payloads[i], m.created_ms,
                         m.application_id.empty() ? store::Value(nullptr)
                                                  : store::Value(m.application_id)})
                    .status());
          }
          // webhook_deliveries holds only what recover needs: deliveries that failed, and those
          // held for a disabled endpoint (pending ones are in the endpoint's queue).
          for (const Endpoint& ep : endpoints) {
            auto it = plan.find(ep.id);
            if (it == plan.end() || ep.state == EndpointState::kActive) {
              continue;
            }
            for (size_t i : it->second) {
              EVO_RETURN_IF_ERROR(
                  tx.Exec(
                        "INSERT OR IGNORE INTO webhook_deliveries(endpoint_id, message_seq, state, "
                        "attempts, updated_ms) VALUES(?, ?, 'disabled', 0, ?)",
                        {ep.id, SeqOf(messages[i].id), now})
                      .status());
            }
          }
          return OkStatus();
        },
        store::TxMode::kDurable);
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return left == 0; });
    return stored.ok() ? failure : stored;
  }

  // ---- the recorder: attempts and delivery states, written in batches; endpoint writes
  // of the dispatcher and the client; the retention sweep ----

  void Enqueue(Record record) {
    {
      std::lock_guard lock(record_mu_);
      if (pending_.size() >= kMaxPendingRecords && record.fail_lease_id.empty()) {
        ++dropped_;  // bounded: the delivery itself is settled in the queue either way
        return;
      }
      pending_.push_back(std::move(record));
    }
    record_cv_.notify_one();
  }

  // Runs `task` on the recorder thread (in order); also during Stop, until the recorder ends.
  void RunOnRecorder(std::function<void()> task) {
    {
      std::lock_guard lock(record_mu_);
      tasks_.push_back(std::move(task));
    }
    record_cv_.notify_one();
  }

  void RecorderLoop() {
    std::vector<Record> batch;
    std::deque<std::function<void()>> tasks;
    while (true) {
      bool stopping = false;
      {
        std::unique_lock lock(record_mu_);
        record_cv_.wait_for(lock, kRecorderFlush, [&] {
          return stopping_ || pending_.size() >= kRecorderBatch || !tasks_.empty();
        });
        stopping = stopping_;
        while (!pending_.empty() && batch.size() < kRecorderBatch) {
          batch.push_back(std::move(pending_.front()));
          pending_.pop_front();
        }
        tasks.swap(tasks_);
      }
      // The boundary: whatever a task, a batch or the sweep throws is logged, and the loop
      // goes on. A batch that throws is dropped, but for its failures, which go back to their
      // queues to be tried and recorded again (never dead-lettered without their row).
      for (auto& task : tasks) {
        Guarded("an endpoint write", [&] { task(); });
      }
      tasks.clear();
      if (!batch.empty()) {
        if (!Guarded("attempt records", [&] { Flush(batch); })) {
          HandBackFailures(batch, "recording the failure threw");
        }
        batch.clear();
      }
      if (!stopping && NowMs() >= next_sweep_ms_) {
        bool more = false;
        Guarded("the retention sweep", [&] { more = Sweep(); });
        next_sweep_ms_ = more ? NowMs() : NowMs() + kSweepInterval.count();
      }
      if (stopping) {
        std::lock_guard lock(record_mu_);
        if (pending_.empty() && tasks_.empty()) {
          return;
        }
      }
    }
  }

  // Runs `fn`; false (logged) when it threw.
  static bool Guarded(const char* what, const std::function<void()>& fn) {
    try {
      fn();
      return true;
    } catch (const std::exception& e) {
      spdlog::error("webhooks: {}: {}", what, e.what());
    } catch (...) {
      spdlog::error("webhooks: {}: unknown exception", what);
    }
    return false;
  }

  // The failures of `batch` whose record is not stored go back to their queues, to be tried
  // again after a while without using up an attempt.
  void HandBackFailures(const std::vector<Record>& batch, const std::string& why) {
    for (const Record& r : batch) {
      if (r.fail_lease_id.empty()) {
        continue;
      }
      broker_.NackAsync(EndpointQueue(r.attempt.endpoint_id), r.fail_lease_id,
                        {.delay = kUnrecordedFailureDelay, .error = why, .count_attempt = false},
                        [](const StatusOr<bool>&) {});
    }
  }

  void Flush(const std::vector<Record>& batch) {
    bool failures = false;
    for (const Record& r : batch) {
      failures = failures || !r.fail_lease_id.empty();
    }
    // Without ids the attempts are not stored, but the delivery rows still are.
    auto ids = ids_(batch.size());
    if (!ids.ok()) {
      spdlog::warn("webhooks: attempt ids: {} ({} attempts not stored)", ids.status().ToString(),
                   batch.size());
    }
    const Status s = db_.Transaction(
        [&](store::Executor& tx) -> Status {
          std::string delivered;  // [endpoint id, message seq] pairs, as JSON array elements
          for (size_t i = 0; i < batch.size(); ++i) {
            const Attempt& a = batch[i].attempt;
            if (ids.ok()) {
              EVO_RETURN_IF_ERROR(
                  tx.Exec("INSERT INTO webhook_attempts(seq, endpoint_id, message_id, body) "
                          "VALUES(?, ?, ?, ?)",
                          {static_cast<int64_t>((*ids)[i]), a.endpoint_id, a.message_id,
                           StoredAttempt(a)})
                      .status());
            }
            if (batch[i].delivery_state == "failed") {
              EVO_RETURN_IF_ERROR(
                  tx.Exec("INSERT OR REPLACE INTO webhook_deliveries(endpoint_id, message_seq, "
                          "state, attempts, updated_ms) VALUES(?, ?, 'failed', ?, ?)",
                          {a.endpoint_id, SeqOf(a.message_id), int64_t{a.attempt}, a.created_ms})
                      .status());
            } else if (batch[i].delivery_state == "succeeded") {
              if (!delivered.empty()) {
                delivered += ',';
              }
              delivered += json::array({a.endpoint_id, SeqOf(a.message_id)}).dump();
            }
          }
          if (!delivered.empty()) {
            // Delivered (perhaps by a replay or a recover): nothing left to recover. Usually
            // no row exists; one statement looks them all up.
            EVO_RETURN_IF_ERROR(tx.Exec("DELETE FROM webhook_deliveries WHERE (endpoint_id, "
                                        "message_seq) IN (SELECT value->>0, value->>1 FROM "
                                        "json_each(?))",
                                        {'[' + delivered + ']'})
                                    .status());
          }
          return OkStatus();
        },
        // A failed delivery's row is as durable as its dead letter: synced before it exists.
        failures ? store::TxMode::kDurable : store::TxMode::kReadWrite);
    if (!s.ok()) {
      spdlog::warn("webhooks: recording {} attempts: {}", batch.size(), s.ToString());
      HandBackFailures(batch, "recording the failure: " + s.ToString());
      return;
    }
    for (const Record& r : batch) {
      if (!r.fail_lease_id.empty()) {
        broker_.FailAsync(EndpointQueue(r.attempt.endpoint_id), r.fail_lease_id, r.attempt.error,
                          [](const StatusOr<bool>&) {});
      }
    }
  }

  // One turn of the retention sweep: messages older than the retention with their attempts
  // and delivery rows, then what deleted endpoints left. Each transaction holds at most
  // kSweepBatch messages or rows; true when there is more to delete (the next turn goes on).
  bool Sweep() {
    const int64_t now = NowMs();
    int batches = 0;
    if (options_.retention.count() > 0) {
      const int64_t cutoff = now - options_.retention.count();
      while (batches < kSweepBatchesPerTurn && !stopped_.load()) {
        ++batches;
        size_t n = 0;
        const Status s = db_.Transaction([&](store::Executor& tx) -> Status {
          EVO_ASSIGN_OR_RETURN(
              store::Rows rows,
              tx.Query("SELECT seq, id FROM webhook_messages WHERE created_ms < ? ORDER BY "
                       "created_ms LIMIT ?",
                       {cutoff, kSweepBatch}));
          n = rows.size();
          if (n == 0) {
            return OkStatus();
          }
          json seqs = json::array();
          json ids = json::array();
          for (const store::Row& r : rows.rows) {
            seqs.push_back(Int(r[0]));
            ids.push_back(Text(r[1]));
          }
          EVO_RETURN_IF_ERROR(tx.Exec("DELETE FROM webhook_attempts WHERE message_id IN (SELECT "
                                      "value FROM json_each(?))",
                                      {ids.dump()})
                                  .status());
          EVO_RETURN_IF_ERROR(tx.Exec("DELETE FROM webhook_deliveries WHERE message_seq IN "
                                      "(SELECT value FROM json_each(?))",
                                      {seqs.dump()})
                                  .status());
          return tx
              .Exec("DELETE FROM webhook_messages WHERE seq IN (SELECT value FROM json_each(?))",
                    {seqs.dump()})
              .status();
        });
        if (!s.ok()) {
          spdlog::warn("webhooks: retention sweep: {}", s.ToString());
          return false;
        }
        if (n < static_cast<size_t>(kSweepBatch)) {
          break;
        }
        if (batches == kSweepBatchesPerTurn) {
          return true;
        }
      }
    }
    auto tombstones = db_.Query("SELECT id, deleted_ms FROM webhook_deleted_endpoints");
    if (!tombstones.ok()) {
      spdlog::warn("webhooks: retention sweep: {}", tombstones.status().ToString());
      return false;
    }
    for (const store::Row& t : tombstones->rows) {
      const std::string id = Text(t[0]);
      while (true) {
        if (batches++ >= kSweepBatchesPerTurn || stopped_.load()) {
          return true;
        }
        auto deleted = db_.Exec(
            "DELETE FROM webhook_attempts WHERE seq IN (SELECT seq FROM webhook_attempts WHERE "
            "endpoint_id = ? LIMIT ?)",
            {id, kSweepBatch});
        if (!deleted.ok()) {
          spdlog::warn("webhooks: purging the attempts of {}: {}", id, deleted.status().ToString());
          return false;
        }
        if (deleted->rows_affected < kSweepBatch) {
          break;
        }
      }
      auto rows = db_.Exec("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", {id});
      if (rows.ok() && Int(t[1]) < now - kTombstoneLife.count()) {
        (void)db_.Exec("DELETE FROM webhook_deleted_endpoints WHERE id = ?", {id});
      }
    }
    return false;
  }

  const Options options_;
  store::Database& db_;
  queue::Broker& broker_;
  queue::IdSource ids_;
  const Clock& clock_;
  metrics::Registry* registry_;

  std::mutex mu_;
  std::map<std::string, TypeEntry, std::less<>> types_;     // guarded by mu_
  std::map<std::string, Application, std::less<>> apps_;    // guarded by mu_
  std::map<std::string, Endpoint, std::less<>> endpoints_;  // guarded by mu_
  std::map<int64_t, std::string> endpoint_order_;           // guarded by mu_

  BodyCache bodies_{kBodyCacheBytes};
  std::unique_ptr<outbound::Client> client_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::atomic<bool> stopped_{false};
  std::thread fanout_;

  // Serialises the writes of endpoint rows (API calls, and the dispatcher's through the
  // recorder), so that the cache takes them in the order the rows did. Taken before mu_.
  std::mutex endpoint_writes_mu_;

  struct KeyUse {
    std::string fingerprint;  // application + type + payload
    int64_t ms = 0;           // when it was first used
  };
  static constexpr size_t kRecentKeys = 100'000;
  std::mutex keys_mu_;
  std::unordered_map<std::string, KeyUse> recent_keys_;  // guarded by keys_mu_
  std::deque<std::string> key_order_;                    // guarded by keys_mu_, oldest first

  std::mutex record_mu_;
  std::condition_variable record_cv_;
  std::deque<Record> pending_;               // guarded by record_mu_
  std::deque<std::function<void()>> tasks_;  // guarded by record_mu_
  uint64_t dropped_ = 0;                     // guarded by record_mu_
  bool stopping_ = false;                    // guarded by record_mu_
  int64_t next_sweep_ms_ = 0;                // recorder thread
  std::thread recorder_;
};

}  // namespace

Status Validate(const Options& o) {
  if (o.request_timeout < milliseconds(100) || o.request_timeout > std::chrono::minutes(5)) {
    return InvalidArgumentError("request timeout must be 100 ms..5 min");
  }
  if (o.retry_schedule.empty() || o.retry_schedule.size() > 50) {
    return InvalidArgumentError("the retry schedule holds 1..50 delays");
  }
  for (auto d : o.retry_schedule) {
    if (d < milliseconds(0) || d > std::chrono::hours(24 * 7)) {
      return InvalidArgumentError("each retry delay is 0..7 days");
    }
  }
  if (o.retry_jitter < 0 || o.retry_jitter > 1) {
    return InvalidArgumentError("retry jitter must be 0..1");
  }
  if (o.disable_after < milliseconds(0)) {
    return InvalidArgumentError("disable-after must not be negative");
  }
  if (o.retention != milliseconds(0) && o.retention < std::chrono::hours(1)) {
    return InvalidArgumentError("retention is 0 (keep forever) or at least 1 h");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Service>> Service::Open(const Options& options, store::Database& db,
                                                 queue::Broker& broker, queue::IdSource ids,
                                                 const Clock& clock, metrics::Registry* registry) {
  EVO_RETURN_IF_ERROR(Validate(options));
  auto service =
      std::make_unique<ServiceImpl>(options, db, broker, std::move(ids), clock, registry);
  EVO_RETURN_IF_ERROR(service->Start());
  return std::unique_ptr<Service>(std::move(service));
}

}  // namespace evo::webhooks
