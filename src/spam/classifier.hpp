// A trained spam classifier: tokeniser options + a model + its calibration. Immutable once
// trained (except that a naive Bayes model learns from feedback), so one instance is shared
// by every request thread. Private to the spam module; spam/spam.hpp is the contract.
//
// Training (Classifier::Train) fits everything on the examples it is given and nothing else:
// k-fold cross-validation on them yields out-of-fold scores, from which the Platt sigmoid
// (score -> probability) and the decision threshold are fitted; then the final model is
// trained on all of them.
//
// Thread safety: Classify/Explain/Serialize may run concurrently; Learn too (nb only).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "spam/message.hpp"
#include "spam/model.hpp"
#include "spam/tokenizer.hpp"

namespace evo::spam {

struct TrainingOptions {
  ModelOptions model;
  TokenizerOptions tokenizer;
  int folds = 5;  // cross-validation folds for calibration, >= 2
};

// p(spam) = 1 / (1 + exp(-(a * score + b))); the label is spam when score >= threshold.
struct Calibration {
  double a = 1;
  double b = 0;
  double threshold = 0;
  double Probability(double score) const;
};

// A raw message or plain text turned into features, with its label.
Example MakeExample(const Message& message, bool spam, const TokenizerOptions& options);

struct Verdict {
  bool spam = false;
  double probability = 0;  // calibrated probability of spam
  double score = 0;        // raw model score
};

struct TokenWeight {
  std::string token;
  double weight = 0;  // > 0 pushed towards spam
};

class Classifier {
 public:
  // `oof_scores`, when given, receives the out-of-fold score of each example (in order).
  static StatusOr<std::unique_ptr<Classifier>> Train(std::span<const Example> examples,
                                                     const TrainingOptions& options,
                                                     std::vector<double>* oof_scores = nullptr);
  // DataLoss when `bytes` is not a classifier Serialize wrote.
  static StatusOr<std::unique_ptr<Classifier>> Deserialize(std::string_view bytes);

  Verdict Classify(const Message& message) const;
  Verdict ClassifyFeatures(std::span<const uint64_t> features) const;
  // The k tokens that pushed hardest each way, spam side first, then ham side.
  std::vector<TokenWeight> Explain(const Message& message, size_t k) const;
  // Classify and Explain in one pass over the message (what a request needs).
  Verdict ClassifyExplained(const Message& message, size_t k,
                            std::vector<TokenWeight>& tokens) const;
  // Learns (or unlearns) a message: incremental families only (FailedPrecondition otherwise).
  Status Learn(const Message& message, bool spam, bool unlearn);

  std::string Serialize() const;
  const Calibration& calibration() const { return calibration_; }
  const TokenizerOptions& tokenizer() const { return tokenizer_; }
  const Model& model() const { return *model_; }

  Classifier(TokenizerOptions tokenizer, Calibration calibration, std::unique_ptr<Model> model)
      : tokenizer_(tokenizer), calibration_(calibration), model_(std::move(model)) {}

 private:
  TokenizerOptions tokenizer_;
  Calibration calibration_;
  std::unique_ptr<Model> model_;
};

// Fits a Platt sigmoid (a, b) to scores and labels, and picks the threshold that maximises the
// lower of spam recall and ham recall (then their sum). Exposed for tests.
Calibration Calibrate(std::span<const double> scores, const std::vector<bool>& spam);

}  // namespace evo::spam
