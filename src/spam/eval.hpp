// Corpus loading and evaluation for the spam module: the Enron-Spam directory layout, the
// fixed train/test split, the metrics and 10-fold cross-validation behind `evo spam eval`.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.hpp"
#include "spam/classifier.hpp"

namespace evo::spam {

struct LabeledText {
  std::string name;  // file basename (for the split) or "" for messages given inline
  std::string text;
  bool spam = false;
};

// Reads every regular file of DIR/ham and DIR/spam (not recursive). NotFound when DIR or both
// subdirectories are missing; InvalidArgument when a file is larger than `max_file_bytes` or
// the total exceeds `max_total_bytes`. Without `follow_symlinks`, a ham/ or spam/ that is a
// symbolic link counts as missing and linked files are skipped, so nothing outside DIR is
// read (what the server does with a directory a request names).
StatusOr<std::vector<LabeledText>> LoadCorpus(const std::filesystem::path& dir,
                                              size_t max_file_bytes = 16u << 20,
                                              size_t max_total_bytes = size_t{1} << 32,
                                              bool follow_symlinks = true);

// The split bucket of a file: the first 8 hex digits of sha256(basename), mod 10. Buckets
// 0-2 are the test set.
int SplitBucket(std::string_view basename);
inline bool IsTest(std::string_view basename) { return SplitBucket(basename) < 3; }

struct UnsureBand {
  double low = 0.1;  // probabilities in [low, high] are flagged unsure
  double high = 0.9;
};

struct Metrics {
  size_t spam = 0;
  size_t ham = 0;
  size_t false_positives = 0;  // ham labelled spam
  size_t false_negatives = 0;  // spam labelled ham
  size_t unsure = 0;
  double accuracy = 0;
  double spam_recall = 0;
  double ham_recall = 0;
  double precision = 0;
  double f1 = 0;
  double roc_auc = 0;
  double spam_recall_at_ham_99_5 = 0;  // best spam recall with ham recall >= 99.5 %
  double spam_recall_at_ham_99_9 = 0;
};
Metrics ComputeMetrics(std::span<const double> scores, const std::vector<bool>& spam,
                       const Calibration& calibration, const UnsureBand& band);
nlohmann::json ToJson(const Metrics& m);

// Turns labelled texts into examples (ParseMessage + tokeniser).
std::vector<Example> MakeExamples(std::span<const LabeledText> texts,
                                  const TokenizerOptions& options);

struct Evaluation {
  Metrics test;                       // trained on the training split, scored on the test split
  std::vector<double> fold_accuracy;  // 10-fold cross-validation over the split buckets
  double cv_mean_accuracy = 0;
  Metrics cv;  // pooled over the 10 folds
  size_t train_messages = 0;
  double train_seconds = 0;          // tokenising + training on the training split
  double classify_msgs_per_sec = 0;  // parse + tokenise + score of the test split, one thread
};
// `folds` = 0 skips the cross-validation. InvalidArgument when a split has no message of a
// class.
StatusOr<Evaluation> Evaluate(std::span<const LabeledText> corpus, const TrainingOptions& options,
                              const UnsureBand& band, int folds = 10);
nlohmann::json ToJson(const Evaluation& e);

}  // namespace evo::spam
