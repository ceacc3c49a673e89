// Model families of the spam module, behind one interface (private to the module; the
// public contract is spam/spam.hpp).
//
//   kLinear      a linear SVM (squared hinge, L2, dual coordinate descent as in LIBLINEAR) on
//                TF-IDF features (sublinear tf, smoothed idf, L2-normalised rows) of a
//                vocabulary fitted on the training set (features in >= min_df messages),
//                each feature scaled by a power of its naive Bayes log-count ratio (NBSVM).
//   kNaiveBayes  a multinomial naive Bayes over feature presence (each distinct feature once
//                per message), Laplace smoothing; incremental: Learn/Unlearn change integer
//                counts, so unlearning a message returns the model to its exact former state.
//
// Scores are raw margins (> 0 leans spam); calibration to a probability is the
// classifier's job (classifier.hpp).
//
// Thread safety: Score/Explain/Serialize may run concurrently with each other and, for
// kNaiveBayes, with Learn (guarded by the model's mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/status.hpp"

namespace evo::spam {

enum class Family { kLinear, kNaiveBayes };
std::string_view FamilyName(Family family);           // "linear" | "nb"
StatusOr<Family> ParseFamily(std::string_view name);  // InvalidArgument otherwise

struct ModelOptions {
  Family family = Family::kLinear;
  double c = 1.0;         // kLinear: inverse regularisation strength, > 0
  int min_df = 2;         // kLinear: features seen in fewer training messages are dropped
  double nb_scale = 0.5;  // kLinear: each feature is scaled by |NB log-count ratio|^nb_scale
                          // (NBSVM, Wang & Manning 2012); 0 = plain TF-IDF
  double alpha = 1.0;     // kNaiveBayes: Laplace smoothing, > 0
  uint64_t seed = 1;      // kLinear: order of coordinate descent (deterministic)
};
Status Validate(const ModelOptions& options);

// One labelled training message, already turned into features (tokenizer.hpp).
struct Example {
  std::vector<uint64_t> features;
  bool spam = false;
};

// One feature's share of a score.
struct Contribution {
  uint64_t feature = 0;
  double weight = 0;  // > 0 pushed towards spam
};

class Model {
 public:
  virtual ~Model() = default;
  virtual Family family() const = 0;
  // The raw decision score of a message's features; > 0 leans spam.
  virtual double Score(std::span<const uint64_t> features) const = 0;
  // The `k` features that pushed the score most towards spam and towards ham (largest
  // |weight| first; each list may be shorter). Returns the score, as Score would.
  virtual double Explain(std::span<const uint64_t> features, size_t k,
                         std::vector<Contribution>& spam, std::vector<Contribution>& ham) const = 0;
  // Learns (or, with unlearn, takes back) one message. FailedPrecondition for families
  // that are not incremental; FailedPrecondition when unlearning a label the model has no
  // messages of.
  virtual Status Learn(std::span<const uint64_t> features, bool spam, bool unlearn) = 0;
  virtual bool incremental() const = 0;
  // Number of features the model knows.
  virtual size_t size() const = 0;
  // Appends a self-describing binary form (DeserializeModel reads it back).
  virtual void Serialize(std::string& out) const = 0;
};

// Examples turned once into rows of dense feature ids with term frequencies, so that the
// folds of a cross-validation share the work.
class Corpus {
 public:
  explicit Corpus(std::span<const Example> examples);
  size_t size() const { return labels_.size(); }
  bool spam(size_t row) const { return labels_[row]; }

 private:
  friend class CorpusAccess;
  struct Entry {
    uint32_t id;
    uint32_t tf;
  };
  std::vector<uint64_t> hashes_;  // dense id -> feature hash
  std::vector<Entry> entries_;    // all rows' (id, tf), in order of first appearance
  std::vector<size_t> offsets_;   // row r is entries_[offsets_[r], offsets_[r + 1])
  std::vector<bool> labels_;
};

// Fits a model on the given rows of `corpus` (all rows when `rows` is empty).
// InvalidArgument when options are bad or a class has no example.
StatusOr<std::unique_ptr<Model>> TrainModel(const Corpus& corpus, std::span<const uint32_t> rows,
                                            const ModelOptions& options);
// Convenience: all examples.
StatusOr<std::unique_ptr<Model>> TrainModel(std::span<const Example> examples,
                                            const ModelOptions& options);

// Reads what Serialize wrote, advancing `in`. DataLoss when it is truncated or corrupt.
StatusOr<std::unique_ptr<Model>> DeserializeModel(std::string_view& in);

// Little-endian framing of the module's serialisers (core/bytes.hpp).
using bytes::GetF64;
using bytes::GetU64;
using bytes::PutF64;
using bytes::PutU64;

}  // namespace evo::spam
