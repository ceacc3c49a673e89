#include "spam/eval.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <system_error>
#include <thread>

namespace evo::spam {

StatusOr<std::vector<LabeledText>> LoadCorpus(const std::filesystem::path& dir,
                                              size_t max_file_bytes, size_t max_total_bytes,
                                              bool follow_symlinks) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return NotFoundError(dir.string() + ": not a directory");
  }
  std::vector<LabeledText> out;
  size_t total = 0;
  bool any_dir = false;
  for (const char* label : {"ham", "spam"}) {
    const fs::path sub = dir / label;
    const fs::file_status status =
        follow_symlinks ? fs::status(sub, ec) : fs::symlink_status(sub, ec);
    if (!fs::is_directory(status)) {
      continue;
    }
    any_dir = true;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(sub, ec), end; !ec && it != end; it.increment(ec)) {
      const bool regular =
          follow_symlinks ? it->is_regular_file(ec) : fs::is_regular_file(it->symlink_status(ec));
      if (regular) {
        files.push_back(it->path());
      }
    }
    if (ec) {
      return FailedPreconditionError(sub.string() + ": " + ec.message());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const auto size = fs::file_size(f, ec);
      if (ec) {
        return FailedPreconditionError(f.string() + ": " + ec.message());
      }
      if (size > max_file_bytes) {
        return InvalidArgumentError(f.string() + ": larger than " + std::to_string(max_file_bytes) +
                                    " bytes");
      }
      total += size;
      if (total > max_total_bytes) {
        return InvalidArgumentError(dir.string() + ": corpus larger than " +
                                    std::to_string(max_total_bytes) + " bytes");
      }
      std::ifstream in(f, std::ios::binary);
      std::string text(size, '\0');
      if (!in.read(text.data(), static_cast<std::streamsize>(size))) {
        return FailedPreconditionError(f.string() + ": cannot read");
      }
      out.push_back({f.filename().string(), std::move(text), std::string_view(label) == "spam"});
    }
  }
  if (!any_dir) {
    return NotFoundError(dir.string() + ": has neither ham/ nor spam/");
  }
  return out;
}

int SplitBucket(std::string_view basename) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(basename.data()), basename.size(), digest);
  const uint32_t first = (static_cast<uint32_t>(digest[0]) << 24) |
                         (static_cast<uint32_t>(digest[1]) << 16) |
                         (static_cast<uint32_t>(digest[2]) << 8) | digest[3];
  return static_cast<int>(first % 10);
}

namespace {

double RecallAtHam(std::vector<double> ham_scores, std::span<const double> spam_scores,
                   double ham_recall) {
  if (ham_scores.empty() || spam_scores.empty()) {
    return 0;
  }
  std::sort(ham_scores.begin(), ham_scores.end());
  // The lowest threshold keeping at least `ham_recall` of ham strictly below it.
  auto k =
      static_cast<size_t>(std::ceil(ham_recall * static_cast<double>(ham_scores.size()) - 1e-9));
  k = std::clamp<size_t>(k, 1, ham_scores.size());
  const double limit = ham_scores[k - 1];
  size_t caught = 0;
  for (double s : spam_scores) {
    caught += s > limit ? 1 : 0;
  }
  return static_cast<double>(caught) / static_cast<double>(spam_scores.size());
}

// Mann-Whitney U with ties counted half.
double RocAuc(std::span<const double> scores, const std::vector<bool>& spam) {
  std::vector<std::pair<double, bool>> v;
  for (size_t i = 0; i < scores.size(); ++i) {
    v.emplace_back(scores[i], spam[i]);
  }
  std::sort(v.begin(), v.end());
  double pos = 0;
  double neg = 0;
  double rank_sum = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j].first == v[i].first) {
      ++j;
    }
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t t = i; t < j; ++t) {
      if (v[t].second) {
        rank_sum += avg_rank;
        pos += 1;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) {
    return 0;
  }
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Metrics ComputeMetrics(std::span<const double> scores, const std::vector<bool>& spam,
                       const Calibration& calibration, const UnsureBand& band) {
  Metrics m;
  size_t tp = 0;
  size_t tn = 0;
  std::vector<double> ham_scores;
  std::vector<double> spam_scores;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool predicted = scores[i] >= calibration.threshold;
    const double p = calibration.Probability(scores[i]);
    m.unsure += (p >= band.low && p <= band.high) ? 1 : 0;
    if (spam[i]) {
      ++m.spam;
      spam_scores.push_back(scores[i]);
      (predicted ? tp : m.false_negatives) += 1;
    } else {
      ++m.ham;
      ham_scores.push_back(scores[i]);
      (predicted ? m.false_positives : tn) += 1;
    }
  }
  const auto ratio = [](size_t a, size_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
  };
  m.accuracy = ratio(tp + tn, scores.size());
  m.spam_recall = ratio(tp, m.spam);
  m.ham_recall = ratio(tn, m.ham);
  m.precision = ratio(tp, tp + m.false_positives);
  m.f1 = m.precision + m.spam_recall > 0
             ? 2 * m.precision * m.spam_recall / (m.precision + m.spam_recall)
             : 0;
  m.roc_auc = RocAuc(scores, spam);
  m.spam_recall_at_ham_99_5 = RecallAtHam(ham_scores, spam_scores, 0.995);
  m.spam_recall_at_ham_99_9 = RecallAtHam(ham_scores, spam_scores, 0.999);
  return m;
}

nlohmann::json ToJson(const Metrics& m) {
  return {{"messages", m.spam + m.ham},
          {"spam", m.spam},
          {"ham", m.ham},
          {"accuracy", m.accuracy},
          {"spam_recall", m.spam_recall},
          {"ham_recall", m.ham_recall},
          {"precision", m.precision},
          {"f1", m.f1},
          {"roc_auc", m.roc_auc},
          {"spam_recall_at_ham_99_5", m.spam_recall_at_ham_99_5},
          {"spam_recall_at_ham_99_9", m.spam_recall_at_ham_99_9},
          {"false_positives", m.false_positives},
          {"false_negatives", m.false_negatives},
          {"unsure", m.unsure}};
}

std::vector<Example> MakeExamples(std::span<const LabeledText> texts,
                                  const TokenizerOptions& options) {
  std::vector<Example> out(texts.size());
  // Two threads (the machines we target have few cores; training runs beside serving).
  auto work = [&](size_t first, size_t step) {
    for (size_t i = first; i < texts.size(); i += step) {
      out[i] = MakeExample(ParseMessage(texts[i].text), texts[i].spam, options);
    }
  };
  if (texts.size() < 256) {
    work(0, 1);
    return out;
  }
  std::thread helper(work, 1, 2);
  work(0, 2);
  helper.join();
  return out;
}

StatusOr<Evaluation> Evaluate(std::span<const LabeledText> corpus, const TrainingOptions& options,
                              const UnsureBand& band, int folds) {
  using Clock = std::chrono::steady_clock;
  std::vector<int> bucket(corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    bucket[i] = SplitBucket(corpus[i].name);
  }
  auto subset = [&](auto keep) {
    std::vector<LabeledText> out;
    for (size_t i = 0; i < corpus.size(); ++i) {
      if (keep(bucket[i])) {
        out.push_back(corpus[i]);
      }
    }
    return out;
  };
  Evaluation e;
  const std::vector<LabeledText> train = subset([](int b) { return b >= 3; });
  const std::vector<LabeledText> test = subset([](int b) { return b < 3; });
  e.train_messages = train.size();
  const auto t0 = Clock::now();
  const std::vector<Example> train_examples = MakeExamples(train, options.tokenizer);
  EVO_ASSIGN_OR_RETURN(auto classifier, Classifier::Train(train_examples, options));
  e.train_seconds = Seconds(Clock::now() - t0);

  std::vector<double> scores(test.size());
  std::vector<bool> labels(test.size());
  const auto t1 = Clock::now();
  for (size_t i = 0; i < test.size(); ++i) {
    scores[i] = classifier->Classify(ParseMessage(test[i].text)).score;
    labels[i] = test[i].spam;
  }
  const double classify_seconds = Seconds(Clock::now() - t1);
  e.classify_msgs_per_sec =
      classify_seconds > 0 ? static_cast<double>(test.size()) / classify_seconds : 0;
  e.test = ComputeMetrics(scores, labels, classifier->calibration(), band);

  // k-fold cross-validation over the buckets (10 folds = one bucket each).
  if (folds > 0) {
    const std::vector<Example> all = MakeExamples(corpus, options.tokenizer);
    std::vector<double> pooled_scores;
    std::vector<bool> pooled_labels;
    double pooled_correct = 0;
    for (int f = 0; f < folds; ++f) {
      std::vector<Example> fold_train;
      std::vector<size_t> fold_test;
      for (size_t i = 0; i < all.size(); ++i) {
        if (bucket[i] % folds == f) {
          fold_test.push_back(i);
        } else {
          fold_train.push_back(all[i]);
        }
      }
      EVO_ASSIGN_OR_RETURN(auto c, Classifier::Train(fold_train, options));
      size_t correct = 0;
      for (size_t i : fold_test) {
        const Verdict v = c->ClassifyFeatures(all[i].features);
        correct += v.spam == all[i].spam ? 1 : 0;
        // Pool scores relative to each fold's threshold so one threshold (0) applies.
        pooled_scores.push_back(v.score - c->calibration().threshold);
        pooled_labels.push_back(all[i].spam);
      }
      pooled_correct += static_cast<double>(correct);
      e.fold_accuracy.push_back(fold_test.empty() ? 0
                                                  : static_cast<double>(correct) /
                                                        static_cast<double>(fold_test.size()));
    }
    double sum = 0;
    for (double a : e.fold_accuracy) {
      sum += a;
    }
    e.cv_mean_accuracy = sum / static_cast<double>(folds);
    Calibration zero = classifier->calibration();
    zero.b += zero.a * zero.threshold;  // probabilities of the shifted scores
    zero.threshold = 0;
    e.cv = ComputeMetrics(pooled_scores, pooled_labels, zero, band);
    (void)pooled_correct;
  }
  return e;
}

nlohmann::json ToJson(const Evaluation& e) {
  return {{"test", ToJson(e.test)},
          {"cv",
           {{"folds", e.fold_accuracy.size()},
            {"fold_accuracy", e.fold_accuracy},
            {"mean_accuracy", e.cv_mean_accuracy},
            {"pooled", ToJson(e.cv)}}},
          {"train_messages", e.train_messages},
          {"train_seconds", e.train_seconds},
          {"classify_msgs_per_sec", e.classify_msgs_per_sec}};
}

}  // namespace evo::spam
