#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <span>

#include "spam/classifier.hpp"
#include "spam/spam.hpp"

namespace evo::spam {
namespace {

const std::vector<store::Migration>& Migrations() {
  static const std::vector<store::Migration> migrations = {
      {1,
       "CREATE TABLE spam_models("
       " version INTEGER PRIMARY KEY,"
       " created_at TEXT NOT NULL,"
       " family TEXT NOT NULL,"
       " messages INTEGER NOT NULL,"
       " spam INTEGER NOT NULL,"
       " ham INTEGER NOT NULL,"
       " features INTEGER NOT NULL,"
       " train_seconds REAL NOT NULL,"
       " metrics TEXT NOT NULL,"
       " model BLOB NOT NULL);"
       "CREATE TABLE spam_active("
       " id INTEGER PRIMARY KEY CHECK (id = 1),"
       " version INTEGER NOT NULL REFERENCES spam_models(version));"
       "CREATE TABLE spam_feedback("
       " seq INTEGER PRIMARY KEY,"
       " version INTEGER NOT NULL REFERENCES spam_models(version),"
       " spam INTEGER NOT NULL,"
       " unlearn INTEGER NOT NULL,"
       " subject TEXT NOT NULL,"
       " text TEXT NOT NULL,"
       " created_at TEXT NOT NULL);"
       "CREATE INDEX spam_feedback_version ON spam_feedback(version, seq);"}};
  return migrations;
}

Status TextError(const std::string& message, std::string_view reason) {
  return InvalidArgumentError(message).With(kPayloadReason, std::string(reason));
}

// The message the model sees: `text` parsed, with `subject` (if not empty) as its subject.
Message ToMessage(std::string_view text, std::string_view subject) {
  Message m = ParseMessage(text);
  if (!subject.empty()) {
    m.subject = ParseSubject(subject);
  }
  return m;
}

// The loaded active version: the classifier and the feedback already applied to it.
struct Active {
  int64_t version = 0;
  std::unique_ptr<Classifier> classifier;
  int64_t applied_seq = 0;  // highest spam_feedback.seq applied; guarded by Impl::feedback_mu
  int64_t feedback = 0;
};

}  // namespace

Status Validate(const ServiceOptions& o) {
  if (!(o.unsure.low >= 0 && o.unsure.low <= o.unsure.high && o.unsure.high <= 1)) {
    return InvalidArgumentError("unsure band: need 0 <= low <= high <= 1");
  }
  if (o.top_tokens > 50) {
    return InvalidArgumentError("top tokens: at most 50");
  }
  if (o.calibration_folds < 2 || o.calibration_folds > 20) {
    return InvalidArgumentError("calibration folds: 2..20");
  }
  if (o.max_text_bytes == 0) {
    return InvalidArgumentError("max text bytes: must be positive");
  }
  return OkStatus();
}

nlohmann::json ToJson(const ModelInfo& m) {
  return {{"version", m.version},
          {"family", m.family},
          {"active", m.active},
          {"createdAt", m.created_at},
          {"messages", m.messages},
          {"spam", m.spam},
          {"ham", m.ham},
          {"features", m.features},
          {"feedback", m.feedback},
          {"threshold", m.threshold},
          {"trainSeconds", m.train_seconds},
          {"metrics", m.metrics}};
}

struct Service::Impl {
  store::Database& db;
  ServiceOptions options;
  const Clock& clock;
  std::atomic<std::shared_ptr<Active>> active;
  std::mutex train_mu;     // one training at a time
  std::mutex feedback_mu;  // orders feedback application and version swaps (store + memory)

  Impl(store::Database& d, const ServiceOptions& o, const Clock& c) : db(d), options(o), clock(c) {}

  StatusOr<std::shared_ptr<Active>> Load(int64_t version) {
    EVO_ASSIGN_OR_RETURN(store::Row row,
                         db.QueryOne("SELECT model FROM spam_models WHERE version = ?", {version}));
    EVO_ASSIGN_OR_RETURN(store::Blob blob, store::AsBlob(row[0]));
    auto a = std::make_shared<Active>();
    a->version = version;
    EVO_ASSIGN_OR_RETURN(a->classifier, Classifier::Deserialize(blob.bytes));
    EVO_RETURN_IF_ERROR(ApplyFeedback(*a));
    return a;
  }

  // Applies the feedback rows of `a`'s version it has not seen yet, read through `db` (the
  // database, or a transaction). REQUIRES: feedback_mu, or `a` not yet published.
  static Status ApplyFeedback(Active& a, store::Executor& db) {
    if (!a.classifier->model().incremental()) {
      return OkStatus();
    }
    EVO_ASSIGN_OR_RETURN(store::Rows rows,
                         db.Query("SELECT seq, spam, unlearn, subject, text FROM spam_feedback "
                                  "WHERE version = ? AND seq > ? ORDER BY seq",
                                  {a.version, a.applied_seq}));
    for (const store::Row& r : rows.rows) {
      EVO_ASSIGN_OR_RETURN(int64_t seq, store::AsInt64(r[0]));
      EVO_ASSIGN_OR_RETURN(int64_t spam, store::AsInt64(r[1]));
      EVO_ASSIGN_OR_RETURN(int64_t unlearn, store::AsInt64(r[2]));
      EVO_ASSIGN_OR_RETURN(std::string subject, store::AsText(r[3]));
      EVO_ASSIGN_OR_RETURN(std::string text, store::AsText(r[4]));
      const Message m = ToMessage(text, subject);
      // A row that no longer applies (unlearning what was not learned) was rejected when
      // it was recorded; ignore the error rather than refuse to load.
      (void)a.classifier->Learn(m, spam != 0, unlearn != 0);
      a.applied_seq = seq;
      ++a.feedback;
    }
    return OkStatus();
  }
  Status ApplyFeedback(Active& a) { return ApplyFeedback(a, db); }

  StatusOr<ModelInfo> InfoFromRow(const store::Row& r, int64_t active_version) const {
    ModelInfo m;
    EVO_ASSIGN_OR_RETURN(m.version, store::AsInt64(r[0]));
    EVO_ASSIGN_OR_RETURN(m.created_at, store::AsText(r[1]));
    EVO_ASSIGN_OR_RETURN(m.family, store::AsText(r[2]));
    EVO_ASSIGN_OR_RETURN(m.messages, store::AsInt64(r[3]));
    EVO_ASSIGN_OR_RETURN(m.spam, store::AsInt64(r[4]));
    EVO_ASSIGN_OR_RETURN(m.ham, store::AsInt64(r[5]));
    EVO_ASSIGN_OR_RETURN(m.features, store::AsInt64(r[6]));
    EVO_ASSIGN_OR_RETURN(m.train_seconds, store::AsDouble(r[7]));
    EVO_ASSIGN_OR_RETURN(std::string metrics, store::AsText(r[8]));
    EVO_ASSIGN_OR_RETURN(m.feedback, store::AsInt64(r[9]));
    m.metrics = nlohmann::json::parse(metrics, nullptr, false);
    if (m.metrics.is_object() && m.metrics.contains("threshold")) {
      m.threshold = m.metrics["threshold"].get<double>();
      m.metrics.erase("threshold");
    }
    m.active = m.version == active_version;
    return m;
  }

  static constexpr std::string_view kInfoColumns =
      "SELECT m.version, m.created_at, m.family, m.messages, m.spam, m.ham, m.features, "
      "m.train_seconds, m.metrics, (SELECT COUNT(*) FROM spam_feedback f WHERE f.version = "
      "m.version) FROM spam_models m";

  StatusOr<int64_t> StoredActive() {
    auto row = db.QueryOne("SELECT version FROM spam_active WHERE id = 1");
    if (!row.ok()) {
      return row.status().code() == StatusCode::kNotFound ? StatusOr<int64_t>(int64_t{0})
                                                          : StatusOr<int64_t>(row.status());
    }
    return store::AsInt64((*row)[0]);
  }
};

Service::Service(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Service::~Service() = default;

StatusOr<std::unique_ptr<Service>> Service::Open(store::Database& db, const ServiceOptions& options,
                                                 const Clock& clock) {
  EVO_RETURN_IF_ERROR(Validate(options));
  EVO_RETURN_IF_ERROR(db.Migrate("spam", Migrations()));
  std::unique_ptr<Service> s(new Service(std::make_unique<Impl>(db, options, clock)));
  EVO_RETURN_IF_ERROR(s->Refresh());
  return s;
}

int64_t Service::active_version() const {
  const auto a = impl_->active.load();
  return a ? a->version : 0;
}

Status Service::CheckText(std::string_view text) const {
  if (text.empty()) {
    return TextError("text is empty", "EMPTY_TEXT").With(kPayloadPointer, "#/text");
  }
  if (text.size() > impl_->options.max_text_bytes) {
    return TextError(
               "text is larger than " + std::to_string(impl_->options.max_text_bytes) + " bytes",
               "TEXT_TOO_LARGE")
        .With(kPayloadPointer, "#/text");
  }
  // Any other text is classified, NUL bytes and other control characters included: a spam
  // filter judges what arrives, binary parts too.
  const bool blank = std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f';
  });
  if (blank) {
    return TextError("text is only white space", "EMPTY_TEXT").With(kPayloadPointer, "#/text");
  }
  return OkStatus();
}

namespace {
Status NoModel() {
  return FailedPreconditionError(
             "no spam model is active yet: train one with POST /v1/spam/models or "
             "`evo spam train DIR`")
      .With(kPayloadReason, "NO_MODEL");
}

Classification Answer(const Active& a, const Message& m, const ServiceOptions& o) {
  Classification c;
  const Verdict v = o.top_tokens > 0
                        ? a.classifier->ClassifyExplained(m, o.top_tokens, c.top_tokens)
                        : a.classifier->Classify(m);
  c.spam = v.spam;
  c.probability = v.probability;
  c.unsure = v.probability >= o.unsure.low && v.probability <= o.unsure.high;
  c.version = a.version;
  return c;
}

}  // namespace

StatusOr<Classification> Service::Classify(std::string_view text, std::string_view subject) const {
  EVO_RETURN_IF_ERROR(CheckText(text));
  const auto a = impl_->active.load();
  if (!a) {
    return NoModel();
  }
  return Answer(*a, ToMessage(text, subject), impl_->options);
}

StatusOr<std::vector<StatusOr<Classification>>> Service::ClassifyBatch(
    const std::vector<std::pair<std::string, std::string>>& texts) const {
  const auto a = impl_->active.load();
  if (!a) {
    return NoModel();
  }
  std::vector<StatusOr<Classification>> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& [text, subject] = texts[i];
    if (Status s = CheckText(text); !s.ok()) {
      s.SetPayload(kPayloadPointer, "#/messages/" + std::to_string(i) + "/text");
      out.emplace_back(std::move(s));
    } else {
      out.emplace_back(Answer(*a, ToMessage(text, subject), impl_->options));
    }
  }
  return out;
}

StatusOr<int64_t> Service::Feedback(std::string_view text, std::string_view subject, bool spam,
                                    bool unlearn) {
  EVO_RETURN_IF_ERROR(CheckText(text));
  std::lock_guard lock(impl_->feedback_mu);
  const auto a = impl_->active.load();
  if (!a) {
    return NoModel();
  }
  if (!a->classifier->model().incremental()) {
    return FailedPreconditionError(
               "the active model (version " + std::to_string(a->version) + ", family " +
               std::string(FamilyName(a->classifier->model().family())) +
               ") is not incremental: train a new version with the feedback included, or "
               "use the nb family")
        .With(kPayloadReason, "MODEL_NOT_INCREMENTAL");
  }
  // One write transaction (which excludes every other writer, in this process or another)
  // catches up with feedback recorded elsewhere, learns this message and records it, so
  // that every instance applies the same rows in the same order.
  const Message m = ToMessage(text, subject);
  bool learned = false;
  Status learn_error;
  const Status recorded = impl_->db.Transaction([&](store::Executor& tx) -> Status {
    EVO_RETURN_IF_ERROR(Impl::ApplyFeedback(*a, tx));
    if (Status s = a->classifier->Learn(m, spam, unlearn); !s.ok()) {
      learn_error = s;
      return s;
    }
    learned = true;
    EVO_ASSIGN_OR_RETURN(store::Row row,
                         tx.QueryOne("SELECT COALESCE(MAX(seq), 0) + 1 FROM spam_feedback"));
    EVO_ASSIGN_OR_RETURN(int64_t seq, store::AsInt64(row[0]));
    EVO_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO spam_feedback(seq, version, spam, unlearn, subject, text, "
                "created_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
                {seq, a->version, int64_t{spam ? 1 : 0}, int64_t{unlearn ? 1 : 0},
                 std::string(subject), std::string(text), FormatTimestamp(impl_->clock.Now())})
            .status());
    a->applied_seq = seq;
    return OkStatus();
  });
  if (!learn_error.ok()) {
    learn_error.SetPayload(kPayloadReason, unlearn ? "NOT_LEARNED" : "LEARN_FAILED");
    return learn_error;
  }
  if (!recorded.ok()) {
    // Not recorded: take the change back so that memory matches the store.
    if (learned) {
      (void)a->classifier->Learn(m, spam, !unlearn);
    }
    return recorded;
  }
  ++a->feedback;
  return a->version;
}

StatusOr<ModelInfo> Service::Train(const TrainRequest& request) {
  std::lock_guard lock(impl_->train_mu);
  // A corpus directory is bulk data: a file that is not a message (empty, blank, too large)
  // is skipped and reported in the metrics instead of failing the whole training. Inline
  // messages are the caller's own: a bad one is an error pointing at it.
  std::vector<size_t> bad;
  std::vector<std::string> skipped;
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const LabeledText& m = request.messages[i];
    if (Status s = CheckText(m.text); !s.ok()) {
      if (m.name.empty()) {
        const std::string index = std::to_string(i);
        return Status(s.code(), "messages[" + index + "]: " + std::string(s.message()))
            .With(kPayloadReason, s.GetPayload(kPayloadReason).value_or(""))
            .With(kPayloadPointer, "#/messages/" + index + "/text");
      }
      bad.push_back(i);
      if (skipped.size() < 10) {
        skipped.push_back(m.name + ": " + std::string(s.message()));
      }
    }
  }
  std::vector<LabeledText> kept;  // a copy only when something was skipped
  if (!bad.empty()) {
    kept.reserve(request.messages.size() - bad.size());
    for (size_t i = 0, b = 0; i < request.messages.size(); ++i) {
      if (b < bad.size() && bad[b] == i) {
        ++b;
      } else {
        kept.push_back(request.messages[i]);
      }
    }
  }
  const std::span<const LabeledText> messages = bad.empty()
                                                    ? std::span<const LabeledText>(request.messages)
                                                    : std::span<const LabeledText>(kept);
  const auto spam = static_cast<size_t>(
      std::count_if(messages.begin(), messages.end(), [](const LabeledText& m) { return m.spam; }));
  const size_t ham = messages.size() - spam;
  const auto folds = static_cast<size_t>(impl_->options.calibration_folds);
  if (spam < folds || ham < folds) {
    return InvalidArgumentError("training needs at least " + std::to_string(folds) + " spam and " +
                                std::to_string(folds) + " ham messages (got " +
                                std::to_string(spam) + " spam, " + std::to_string(ham) + " ham)")
        .With(kPayloadReason, "TOO_FEW_MESSAGES");
  }
  TrainingOptions options;
  options.model.family = request.family.value_or(impl_->options.family);
  options.folds = impl_->options.calibration_folds;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Example> examples = MakeExamples(messages, options.tokenizer);
  std::vector<double> oof;
  EVO_ASSIGN_OR_RETURN(auto classifier, Classifier::Train(examples, options, &oof));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<bool> labels(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    labels[i] = examples[i].spam;
  }
  nlohmann::json metrics = {
      {"crossValidation",
       ToJson(ComputeMetrics(oof, labels, classifier->calibration(), impl_->options.unsure))},
      {"folds", options.folds},
      {"threshold", classifier->calibration().Probability(classifier->calibration().threshold)},
      {"calibration", {{"a", classifier->calibration().a}, {"b", classifier->calibration().b}}}};
  if (!bad.empty()) {
    metrics["skipped"] = {{"count", bad.size()}, {"files", skipped}};
  }
  const std::string blob = classifier->Serialize();
  const std::string created = FormatTimestamp(impl_->clock.Now());
  const auto features = static_cast<int64_t>(classifier->model().size());
  int64_t version = 0;
  bool activated = false;
  std::lock_guard swap_lock(impl_->feedback_mu);
  EVO_RETURN_IF_ERROR(impl_->db.Transaction([&](store::Executor& tx) -> Status {
    EVO_ASSIGN_OR_RETURN(store::Row row,
                         tx.QueryOne("SELECT COALESCE(MAX(version), 0) + 1 FROM spam_models"));
    EVO_ASSIGN_OR_RETURN(version, store::AsInt64(row[0]));
    EVO_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO spam_models(version, created_at, family, messages, spam, ham, "
                "features, train_seconds, metrics, model) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                {version, created, std::string(FamilyName(options.model.family)),
                 static_cast<int64_t>(examples.size()), static_cast<int64_t>(spam),
                 static_cast<int64_t>(ham), features, seconds, metrics.dump(), store::Blob{blob}})
            .status());
    EVO_ASSIGN_OR_RETURN(store::Rows current,
                         tx.Query("SELECT version FROM spam_active WHERE id = 1"));
    if (current.empty() || request.activate) {
      EVO_RETURN_IF_ERROR(tx.Exec("INSERT INTO spam_active(id, version) VALUES(1, ?) "
                                  "ON CONFLICT(id) DO UPDATE SET version = excluded.version",
                                  {version})
                              .status());
      activated = true;
    }
    return OkStatus();
  }));
  if (activated) {
    auto a = std::make_shared<Active>();
    a->version = version;
    a->classifier = std::move(classifier);
    impl_->active.store(std::move(a));
  }
  return Get(version);
}

StatusOr<std::vector<ModelInfo>> Service::List() const {
  EVO_ASSIGN_OR_RETURN(store::Rows rows,
                       impl_->db.Query(std::string(Impl::kInfoColumns) + " ORDER BY m.version"));
  const int64_t active = active_version();
  std::vector<ModelInfo> out;
  for (const store::Row& r : rows.rows) {
    EVO_ASSIGN_OR_RETURN(ModelInfo m, impl_->InfoFromRow(r, active));
    out.push_back(std::move(m));
  }
  return out;
}

StatusOr<ModelInfo> Service::Get(int64_t version) const {
  auto row =
      impl_->db.QueryOne(std::string(Impl::kInfoColumns) + " WHERE m.version = ?", {version});
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) {
      return NotFoundError("no spam model version " + std::to_string(version))
          .With(kPayloadReason, "UNKNOWN_VERSION");
    }
    return row.status();
  }
  return impl_->InfoFromRow(*row, active_version());
}

Status Service::Activate(int64_t version) {
  EVO_RETURN_IF_ERROR(Get(version).status());
  std::lock_guard lock(impl_->feedback_mu);
  EVO_ASSIGN_OR_RETURN(std::shared_ptr<Active> a, impl_->Load(version));
  EVO_RETURN_IF_ERROR(impl_->db
                          .Exec("INSERT INTO spam_active(id, version) VALUES(1, ?) "
                                "ON CONFLICT(id) DO UPDATE SET version = excluded.version",
                                {version})
                          .status());
  impl_->active.store(std::move(a));
  return OkStatus();
}

Status Service::Refresh() {
  // Under feedback_mu throughout, so that a concurrent Activate or Train cannot be undone by
  // a stale read here.
  std::lock_guard lock(impl_->feedback_mu);
  EVO_ASSIGN_OR_RETURN(int64_t stored, impl_->StoredActive());
  auto current = impl_->active.load();
  if (stored == 0) {
    return OkStatus();
  }
  if (current && current->version == stored) {
    return impl_->ApplyFeedback(*current);
  }
  EVO_ASSIGN_OR_RETURN(std::shared_ptr<Active> a, impl_->Load(stored));
  impl_->active.store(std::move(a));
  return OkStatus();
}

}  // namespace evo::spam
