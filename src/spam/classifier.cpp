#include "spam/classifier.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>

namespace evo::spam {
namespace {

constexpr uint64_t kClassifierTag = 0x3143534f5645ULL;  // "EVOSC1"

double Sigmoid(double z) {
  return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
}

// Platt scaling by Newton's method with backtracking (Lin, Lin & Weng 2007), with Platt's
// smoothed targets so that separable scores do not push a to infinity.
void FitSigmoid(std::span<const double> scores, const std::vector<bool>& spam, double& a,
                double& b) {
  const size_t n = scores.size();
  double pos = 0;
  for (bool s : spam) {
    pos += s ? 1 : 0;
  }
  const double neg = static_cast<double>(n) - pos;
  const double hi = (pos + 1) / (pos + 2);
  const double lo = 1 / (neg + 2);
  std::vector<double> t(n);
  for (size_t i = 0; i < n; ++i) {
    t[i] = spam[i] ? hi : lo;
  }
  // Parameterised as p = 1 / (1 + exp(A s + B)) as in the paper (pa, pb); a = -A, b = -B.
  double pa = 0;
  double pb = std::log((neg + 1) / (pos + 1));
  auto loss = [&](double aa, double bb) {
    double f = 0;
    for (size_t i = 0; i < n; ++i) {
      const double z = scores[i] * aa + bb;
      f += z >= 0 ? t[i] * z + std::log1p(std::exp(-z)) : (t[i] - 1) * z + std::log1p(std::exp(z));
    }
    return f;
  };
  double f = loss(pa, pb);
  for (int iter = 0; iter < 100; ++iter) {
    double h11 = 1e-12;
    double h22 = 1e-12;
    double h21 = 0;
    double g1 = 0;
    double g2 = 0;
    for (size_t i = 0; i < n; ++i) {
      const double z = scores[i] * pa + pb;
      const double p = z >= 0 ? std::exp(-z) / (1 + std::exp(-z)) : 1 / (1 + std::exp(z));
      const double q = 1 - p;
      const double d2 = p * q;
      h11 += scores[i] * scores[i] * d2;
      h22 += d2;
      h21 += scores[i] * d2;
      const double d1 = t[i] - p;
      g1 += scores[i] * d1;
      g2 += d1;
    }
    if (std::abs(g1) < 1e-5 && std::abs(g2) < 1e-5) {
      break;
    }
    const double det = h11 * h22 - h21 * h21;
    const double da = -(h22 * g1 - h21 * g2) / det;
    const double db = -(-h21 * g1 + h11 * g2) / det;
    const double gd = g1 * da + g2 * db;
    double step = 1;
    bool moved = false;
    while (step >= 1e-10) {
      const double na = pa + step * da;
      const double nb = pb + step * db;
      const double nf = loss(na, nb);
      if (nf < f + 1e-4 * step * gd) {
        pa = na;
        pb = nb;
        f = nf;
        moved = true;
        break;
      }
      step /= 2;
    }
    if (!moved) {
      break;
    }
  }
  a = -pa;
  b = -pb;
}

}  // namespace

double Calibration::Probability(double score) const { return Sigmoid(a * score + b); }

Calibration Calibrate(std::span<const double> scores, const std::vector<bool>& spam) {
  Calibration c;
  FitSigmoid(scores, spam, c.a, c.b);
  if (!(c.a > 0) || !std::isfinite(c.a) || !std::isfinite(c.b)) {
    c.a = 1;  // degenerate scores: keep the probability monotone in the score
    c.b = 0;
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return scores[x] < scores[y]; });
  double total_spam = 0;
  for (bool s : spam) {
    total_spam += s ? 1 : 0;
  }
  const double total_ham = static_cast<double>(scores.size()) - total_spam;
  if (total_spam == 0 || total_ham == 0) {
    return c;
  }
  // Threshold below order[k]: ham recall = hams among the first k, spam recall = spams from k.
  double best_min = -1;
  double best_sum = -1;
  double hams_below = 0;
  double spams_below = 0;
  for (size_t k = 0; k <= order.size(); ++k) {
    if (k == 0 || k == order.size() || scores[order[k]] != scores[order[k - 1]]) {
      const double hr = hams_below / total_ham;
      const double sr = (total_spam - spams_below) / total_spam;
      const double mn = std::min(hr, sr);
      if (mn > best_min || (mn == best_min && hr + sr > best_sum)) {
        best_min = mn;
        best_sum = hr + sr;
        if (k == 0) {
          c.threshold = scores[order[0]] - 1;
        } else if (k == order.size()) {
          c.threshold = scores[order[k - 1]] + 1;
        } else {
          c.threshold = (scores[order[k - 1]] + scores[order[k]]) / 2;
        }
      }
    }
    if (k < order.size()) {
      (spam[order[k]] ? spams_below : hams_below) += 1;
    }
  }
  return c;
}

Example MakeExample(const Message& message, bool spam, const TokenizerOptions& options) {
  Example e;
  e.spam = spam;
  ExtractFeatures(message, options, e.features);
  return e;
}

StatusOr<std::unique_ptr<Classifier>> Classifier::Train(std::span<const Example> examples,
                                                        const TrainingOptions& options,
                                                        std::vector<double>* oof_scores) {
  EVO_RETURN_IF_ERROR(Validate(options.model));
  EVO_RETURN_IF_ERROR(Validate(options.tokenizer));
  if (options.folds < 2) {
    return InvalidArgumentError("folds must be at least 2");
  }
  const Corpus corpus(examples);
  size_t spam = 0;
  for (const Example& e : examples) {
    spam += e.spam ? 1 : 0;
  }
  const size_t ham = examples.size() - spam;
  if (spam < static_cast<size_t>(options.folds) || ham < static_cast<size_t>(options.folds)) {
    return InvalidArgumentError("training needs at least " + std::to_string(options.folds) +
                                " spam and " + std::to_string(options.folds) + " ham messages");
  }
  // Stratified folds: the i-th message of each class goes to fold i mod k.
  const auto k = static_cast<size_t>(options.folds);
  std::vector<size_t> fold(examples.size());
  size_t seen[2] = {0, 0};
  for (size_t i = 0; i < examples.size(); ++i) {
    fold[i] = seen[examples[i].spam ? 1 : 0]++ % k;
  }
  std::vector<double> scores(examples.size());
  std::vector<Status> errors(k + 1);
  std::unique_ptr<Model> final_model;
  // The k fold models and the final model are independent: train them on two threads.
  auto job = [&](size_t f) {
    std::vector<uint32_t> rows;
    for (size_t i = 0; i < examples.size(); ++i) {
      if (f == k || fold[i] != f) {
        rows.push_back(static_cast<uint32_t>(i));
      }
    }
    auto model = TrainModel(corpus, rows, options.model);
    if (!model.ok()) {
      errors[f] = model.status();
      return;
    }
    if (f == k) {
      final_model = std::move(*model);
      return;
    }
    for (size_t i = 0; i < examples.size(); ++i) {
      if (fold[i] == f) {
        scores[i] = (*model)->Score(examples[i].features);
      }
    }
  };
  std::thread helper([&] {
    for (size_t f = 1; f <= k; f += 2) {
      job(f);
    }
  });
  for (size_t f = 0; f <= k; f += 2) {
    job(f);
  }
  helper.join();
  for (const Status& s : errors) {
    EVO_RETURN_IF_ERROR(s);
  }
  std::vector<bool> labels(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    labels[i] = examples[i].spam;
  }
  const Calibration calibration = Calibrate(scores, labels);
  if (oof_scores != nullptr) {
    *oof_scores = std::move(scores);
  }
  return std::make_unique<Classifier>(options.tokenizer, calibration, std::move(final_model));
}

Verdict Classifier::ClassifyFeatures(std::span<const uint64_t> features) const {
  Verdict v;
  v.score = model_->Score(features);
  v.probability = calibration_.Probability(v.score);
  v.spam = v.score >= calibration_.threshold;
  return v;
}

Verdict Classifier::Classify(const Message& message) const {
  thread_local std::vector<uint64_t> features;
  features.clear();
  ExtractFeatures(message, tokenizer_, features);
  return ClassifyFeatures(features);
}

std::vector<TokenWeight> Classifier::Explain(const Message& message, size_t k) const {
  std::vector<TokenWeight> tokens;
  (void)ClassifyExplained(message, k, tokens);
  return tokens;
}

Verdict Classifier::ClassifyExplained(const Message& message, size_t k,
                                      std::vector<TokenWeight>& tokens) const {
  thread_local std::vector<uint64_t> features;
  features.clear();
  ExtractFeatures(message, tokenizer_, features);
  std::vector<Contribution> spam;
  std::vector<Contribution> ham;
  Verdict v;
  v.score = model_->Explain(features, k, spam, ham);
  v.probability = calibration_.Probability(v.score);
  v.spam = v.score >= calibration_.threshold;
  // Texts for the chosen few only: a second scan that builds strings for them alone.
  std::vector<uint64_t> wanted;
  for (const auto* side : {&spam, &ham}) {
    for (const Contribution& c : *side) {
      wanted.push_back(c.feature);
    }
  }
  std::sort(wanted.begin(), wanted.end());
  std::vector<std::pair<uint64_t, std::string>> texts;
  ExtractFeatureTexts(message, tokenizer_, texts, wanted);
  std::sort(texts.begin(), texts.end());
  tokens.clear();
  for (const auto* side : {&spam, &ham}) {
    for (const Contribution& c : *side) {
      const auto it =
          std::lower_bound(texts.begin(), texts.end(), std::make_pair(c.feature, std::string()));
      tokens.push_back(
          {it != texts.end() && it->first == c.feature ? it->second : std::string(), c.weight});
    }
  }
  return v;
}

Status Classifier::Learn(const Message& message, bool spam, bool unlearn) {
  std::vector<uint64_t> features;
  ExtractFeatures(message, tokenizer_, features);
  return model_->Learn(features, spam, unlearn);
}

std::string Classifier::Serialize() const {
  std::string out;
  PutU64(out, kClassifierTag);
  PutU64(out, tokenizer_.max_token_bytes);
  PutU64(out, (tokenizer_.bigrams ? 1 : 0) | (tokenizer_.length_feature ? 2 : 0));
  PutF64(out, calibration_.a);
  PutF64(out, calibration_.b);
  PutF64(out, calibration_.threshold);
  model_->Serialize(out);
  return out;
}

StatusOr<std::unique_ptr<Classifier>> Classifier::Deserialize(std::string_view bytes) {
  uint64_t tag;
  uint64_t max_token;
  uint64_t flags;
  Calibration c;
  if (!GetU64(bytes, tag) || tag != kClassifierTag || !GetU64(bytes, max_token) ||
      !GetU64(bytes, flags) || !GetF64(bytes, c.a) || !GetF64(bytes, c.b) ||
      !GetF64(bytes, c.threshold) || max_token == 0 || max_token > 1024 || flags > 3 ||
      !std::isfinite(c.a) || !std::isfinite(c.b) || !std::isfinite(c.threshold)) {
    return DataLossError("spam model: not a classifier, or corrupt");
  }
  TokenizerOptions t;
  t.max_token_bytes = max_token;
  t.bigrams = (flags & 1) != 0;
  t.length_feature = (flags & 2) != 0;
  EVO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, DeserializeModel(bytes));
  if (!bytes.empty()) {
    return DataLossError("spam model: trailing bytes");
  }
  return std::make_unique<Classifier>(t, c, std::move(model));
}

}  // namespace evo::spam
