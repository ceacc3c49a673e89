// The spam module: a spam classifier as a service. Public contract for the composition root
// (src/app) and the HTTP adapter (spam/http.hpp).
//
// A model is trained from labelled messages (an Enron-layout directory or inline messages);
// each training produces a new immutable version, stored with its metrics in the `store`
// database (tables spam_models, spam_active, spam_feedback). One version is active:
// classification uses it; activating another (or rolling back to an earlier one) swaps it
// atomically, so requests in flight finish on the version they started with and
// classification never stops, not even during training.
//
// Feedback (learn / unlearn one message) applies to the active version when its family is
// incremental (nb); it is appended to spam_feedback and replayed onto that version when it is
// loaded again (after a restart, or by another instance sharing the database), so no
// feedback is lost when the process is killed.
//
// Errors:
//   InvalidArgument     bad text (empty or only white space, reason EMPTY_TEXT; too large,
//                       TEXT_TOO_LARGE), bad options, a training set without both classes.
//                       Any other text is classified: NUL bytes, control characters and
//                       binary parts are data, and text in any charset is normalised
//                       (message.hpp)
//   NotFound            an unknown version; a training directory that does not exist
//   FailedPrecondition  no active model yet (reason NO_MODEL); feedback to a
//                       non-incremental model (reason MODEL_NOT_INCREMENTAL); unlearning
//                       what was not learned (reason NOT_LEARNED)
//   other codes         from the store
//
// Thread safety: a Service may be shared by any number of threads. Trainings run one at a
// time (a second waits for the first).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/status.hpp"
#include "spam/eval.hpp"
#include "spam/model.hpp"
#include "store/store.hpp"

namespace evo::spam {

struct ServiceOptions {
  Family family = Family::kLinear;  // family of new models unless a request names one
  UnsureBand unsure;                // probabilities in [low, high] are flagged "unsure"
  size_t top_tokens = 5;            // explanation tokens per direction, 0..50
  int calibration_folds = 5;        // cross-validation folds fitting the calibration, 2..20
  size_t max_text_bytes = 1 << 20;  // largest message accepted for classification
};
Status Validate(const ServiceOptions& options);

struct Classification {
  bool spam = false;
  double probability = 0;               // calibrated probability of spam
  bool unsure = false;                  // probability inside the unsure band
  int64_t version = 0;                  // model version that answered
  std::vector<TokenWeight> top_tokens;  // spam side first, then ham side
};

struct ModelInfo {
  int64_t version = 0;
  std::string family;
  bool active = false;
  std::string created_at;  // RFC 3339
  int64_t messages = 0;
  int64_t spam = 0;
  int64_t ham = 0;
  int64_t features = 0;
  int64_t feedback = 0;    // feedback events applied on top of the trained state
  double threshold = 0;    // probability at and above which the label is spam
  nlohmann::json metrics;  // cross-validation metrics on the training messages
  double train_seconds = 0;
};
nlohmann::json ToJson(const ModelInfo& info);

struct TrainRequest {
  // Messages read from files (`name` set) that fail CheckText (empty, blank, too large) are
  // skipped and listed under metrics.skipped; an inline one (no name) fails the training with a
  // pointer to it.
  std::vector<LabeledText> messages;
  std::optional<Family> family;  // default: ServiceOptions::family
  bool activate = false;         // the first model is always activated
};

class Service {
 public:
  // Creates the tables if needed and loads the active version, if any. `db` and `clock` must
  // outlive the service.
  static StatusOr<std::unique_ptr<Service>> Open(store::Database& db, const ServiceOptions& options,
                                                 const Clock& clock);
  ~Service();

  // Classifies a raw RFC 822 message or plain text (`subject`, if not empty, is the subject
  // of a plain-text body).
  StatusOr<Classification> Classify(std::string_view text, std::string_view subject = {}) const;
  // The same for many messages, all with the same model version. Only a missing model fails
  // the whole batch; a text that cannot be classified (CheckText) gets its own error, with
  // a kPayloadPointer to "#/messages/<index>/text", in its slot.
  StatusOr<std::vector<StatusOr<Classification>>> ClassifyBatch(
      const std::vector<std::pair<std::string, std::string>>& texts_and_subjects) const;

  // Learns one labelled message into the active model (unlearn = take it back). Returns the
  // version it was applied to.
  StatusOr<int64_t> Feedback(std::string_view text, std::string_view subject, bool spam,
                             bool unlearn);

  StatusOr<ModelInfo> Train(const TrainRequest& request);
  StatusOr<std::vector<ModelInfo>> List() const;
  StatusOr<ModelInfo> Get(int64_t version) const;
  Status Activate(int64_t version);

  // Re-reads the active version and new feedback from the store (another process may have
  // changed them). Cheap when nothing changed; the server calls it periodically.
  Status Refresh();

  // The active version, 0 if none.
  int64_t active_version() const;

  // Checks a message before classification or training (InvalidArgument with a reason).
  Status CheckText(std::string_view text) const;

 private:
  struct Impl;
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace evo::spam
