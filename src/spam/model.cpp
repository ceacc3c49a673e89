#include "spam/model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <shared_mutex>

#include "spam/feature_table.hpp"

namespace evo::spam {

std::string_view FamilyName(Family family) { return family == Family::kLinear ? "linear" : "nb"; }

StatusOr<Family> ParseFamily(std::string_view name) {
  if (name == "linear" || name == "svm") {
    return Family::kLinear;
  }
  if (name == "nb" || name == "bayes") {
    return Family::kNaiveBayes;
  }
  return InvalidArgumentError("unknown model family \"" + std::string(name) +
                              "\" (expected linear or nb)");
}

Status Validate(const ModelOptions& options) {
  if (!(options.c > 0) || !std::isfinite(options.c)) {
    return InvalidArgumentError("c must be a positive number");
  }
  if (options.min_df < 1) {
    return InvalidArgumentError("min_df must be at least 1");
  }
  if (!(options.nb_scale >= 0 && options.nb_scale <= 4)) {
    return InvalidArgumentError("nb_scale must be between 0 and 4");
  }
  if (!(options.alpha > 0) || !std::isfinite(options.alpha)) {
    return InvalidArgumentError("alpha must be a positive number");
  }
  return OkStatus();
}

class CorpusAccess {
 public:
  static const std::vector<uint64_t>& hashes(const Corpus& c) { return c.hashes_; }
  static std::span<const Corpus::Entry> row(const Corpus& c, size_t r) {
    return {c.entries_.data() + c.offsets_[r], c.entries_.data() + c.offsets_[r + 1]};
  }
};

Corpus::Corpus(std::span<const Example> examples) {
  FeatureTable ids;
  // Term frequencies per row, counted in arrays indexed by id and stamped with the row
  // number (no sorting, no clearing).
  std::vector<uint32_t> stamp;
  std::vector<uint32_t> count;
  std::vector<uint32_t> touched;
  offsets_.reserve(examples.size() + 1);
  offsets_.push_back(0);
  for (size_t r = 0; r < examples.size(); ++r) {
    const Example& e = examples[r];
    touched.clear();
    for (uint64_t h : e.features) {
      const uint32_t id = ids.Insert(h);
      if (id == hashes_.size()) {
        hashes_.push_back(h);
        stamp.push_back(0);
        count.push_back(0);
      }
      if (stamp[id] != r + 1) {
        stamp[id] = static_cast<uint32_t>(r + 1);
        count[id] = 0;
        touched.push_back(id);
      }
      ++count[id];
    }
    for (uint32_t id : touched) {
      entries_.push_back({id, count[id]});
    }
    offsets_.push_back(entries_.size());
    labels_.push_back(e.spam);
  }
}

namespace {

constexpr uint64_t kLinearTag = 0x31524e4c4f5645ULL;  // "EVOLNR1"
constexpr uint64_t kBayesTag = 0x3142424e4f5645ULL;   // "EVONBB1"

// Keeps the k entries with the largest |weight| in each direction.
void TopK(std::vector<Contribution>& all, size_t k, std::vector<Contribution>& spam,
          std::vector<Contribution>& ham) {
  spam.clear();
  ham.clear();
  for (const Contribution& c : all) {
    if (c.weight > 0) {
      spam.push_back(c);
    } else if (c.weight < 0) {
      ham.push_back(c);
    }
  }
  auto by_size = [](const Contribution& a, const Contribution& b) {
    return std::abs(a.weight) > std::abs(b.weight) ||
           (std::abs(a.weight) == std::abs(b.weight) && a.feature < b.feature);
  };
  for (auto* v : {&spam, &ham}) {
    const size_t n = std::min(k, v->size());
    std::partial_sort(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(n), v->end(), by_size);
    v->resize(n);
  }
}

// ---- linear SVM on TF-IDF ---------------------------------------------------------------

// 1 + ln(tf), the sublinear term frequency, for small counts without calling log.
double SublinearTf(uint32_t tf) {
  static const auto* const table = [] {
    auto* t = new std::array<double, 64>;
    for (size_t i = 1; i < t->size(); ++i) {
      (*t)[i] = 1.0 + std::log(static_cast<double>(i));
    }
    return t;
  }();
  return tf < table->size() ? (*table)[tf] : 1.0 + std::log(static_cast<double>(tf));
}

class LinearModel final : public Model {
 public:
  // keys[i] has inverse document frequency (times its NB scale) idf[i] and weight weights[i].
  LinearModel(const std::vector<uint64_t>& keys, const std::vector<float>& idf,
              const std::vector<float>& weights, double bias)
      : bias_(bias), size_(keys.size()) {
    size_t capacity = 16;
    while (capacity * 7 < keys.size() * 10) {
      capacity *= 2;
    }
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint64_t key = keys[i] == 0 ? 1 : keys[i];
      size_t j = SlotOf(key);
      while (slots_[j].key != 0 && slots_[j].key != key) {
        j = (j + 1) & mask_;
      }
      slots_[j] = {key, idf[i], weights[i]};
    }
  }

  Family family() const override { return Family::kLinear; }
  bool incremental() const override { return false; }
  size_t size() const override { return size_; }

  double Score(std::span<const uint64_t> features) const override {
    double dot = 0;
    double norm2 = 0;
    ForEachTerm(features, [&](const Slot& slot, double x) {
      dot += x * slot.weight;
      norm2 += x * x;
    });
    return norm2 > 0 ? dot / std::sqrt(norm2) + bias_ : bias_;
  }

  double Explain(std::span<const uint64_t> features, size_t k, std::vector<Contribution>& spam,
                 std::vector<Contribution>& ham) const override {
    thread_local std::vector<Contribution> all;
    all.clear();
    double dot = 0;
    double norm2 = 0;
    ForEachTerm(features, [&](const Slot& slot, double x) {
      all.push_back({slot.key, x * slot.weight});
      dot += x * slot.weight;
      norm2 += x * x;
    });
    const double scale = norm2 > 0 ? 1 / std::sqrt(norm2) : 0;
    for (Contribution& c : all) {
      c.weight *= scale;
    }
    TopK(all, k, spam, ham);
    return dot * scale + bias_;
  }

  Status Learn(std::span<const uint64_t>, bool, bool) override {
    return FailedPreconditionError(
        "the linear model is not incremental: train a new version (or use the nb family)");
  }

  void Serialize(std::string& out) const override {
    PutU64(out, kLinearTag);
    PutF64(out, bias_);
    PutU64(out, size_);
    // In slot order: deterministic for a given model.
    for (const Slot& slot : slots_) {
      if (slot.key == 0) {
        continue;
      }
      PutU64(out, slot.key);
      uint32_t a;
      uint32_t b;
      std::memcpy(&a, &slot.idf, 4);
      std::memcpy(&b, &slot.weight, 4);
      PutU64(out, (static_cast<uint64_t>(b) << 32) | a);
    }
  }

  static StatusOr<std::unique_ptr<Model>> Read(std::string_view& in) {
    double bias;
    uint64_t n;
    if (!GetF64(in, bias) || !GetU64(in, n) || n > in.size() / 16 || !std::isfinite(bias)) {
      return DataLossError("spam model: truncated linear model");
    }
    std::vector<uint64_t> keys(n);
    std::vector<float> idf(n);
    std::vector<float> weights(n);
    FeatureTable seen;
    seen.Reserve(n);
    for (size_t i = 0; i < n; ++i) {
      uint64_t packed = 0;
      GetU64(in, keys[i]);
      GetU64(in, packed);
      const auto a = static_cast<uint32_t>(packed);
      const auto b = static_cast<uint32_t>(packed >> 32);
      std::memcpy(&idf[i], &a, 4);
      std::memcpy(&weights[i], &b, 4);
      if (keys[i] == 0 || seen.Insert(keys[i]) != i || !std::isfinite(idf[i]) ||
          !std::isfinite(weights[i])) {
        return DataLossError("spam model: corrupt linear model");
      }
    }
    return std::unique_ptr<Model>(std::make_unique<LinearModel>(keys, idf, weights, bias));
  }

 private:
  // Key, idf and weight side by side: one cache line visit per feature looked up.
  struct Slot {
    uint64_t key = 0;  // 0 = empty
    float idf = 0;
    float weight = 0;
  };

  size_t SlotOf(uint64_t key) const { return static_cast<size_t>((key ^ (key >> 29)) & mask_); }

  const Slot* Find(uint64_t key) const {
    key = key == 0 ? 1 : key;
    for (size_t j = SlotOf(key);; j = (j + 1) & mask_) {
      const Slot& slot = slots_[j];
      if (slot.key == key) {
        return &slot;
      }
      if (slot.key == 0) {
        return nullptr;
      }
    }
  }

  // Calls f(slot, tf-idf value) once per distinct known feature (unnormalised). Term
  // frequencies are counted in per-thread arrays indexed by slot, stamped with a call
  // number so they never need clearing.
  template <typename F>
  void ForEachTerm(std::span<const uint64_t> features, F&& f) const {
    struct Scratch {
      std::vector<uint32_t> stamp;
      std::vector<uint32_t> count;
      std::vector<uint32_t> touched;
      uint32_t epoch = 0;
    };
    thread_local Scratch scratch;
    if (scratch.stamp.size() < slots_.size()) {
      scratch.stamp.assign(slots_.size(), 0);
      scratch.count.assign(slots_.size(), 0);
      scratch.epoch = 0;
    }
    if (++scratch.epoch == 0) {
      std::fill(scratch.stamp.begin(), scratch.stamp.end(), 0);
      scratch.epoch = 1;
    }
    const uint32_t epoch = scratch.epoch;
    scratch.touched.clear();
    for (uint64_t h : features) {
      const Slot* slot = Find(h);
      if (slot == nullptr) {
        continue;
      }
      const auto j = static_cast<uint32_t>(slot - slots_.data());
      if (scratch.stamp[j] != epoch) {
        scratch.stamp[j] = epoch;
        scratch.count[j] = 1;
        scratch.touched.push_back(j);
      } else {
        ++scratch.count[j];
      }
    }
    for (uint32_t j : scratch.touched) {
      f(slots_[j], SublinearTf(scratch.count[j]) * slots_[j].idf);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  double bias_;
  size_t size_;
};

// L2-regularised squared-hinge SVM, dual coordinate descent with shrinking (Hsieh et al.
// 2008, as LIBLINEAR's solver 1 / scikit-learn's LinearSVC). Rows are sparse (index, value);
// the bias is an extra feature of value 1, regularised like the others.
struct SparseRows {
  std::vector<uint32_t> index;
  std::vector<float> value;
  std::vector<size_t> offsets{0};
};

std::vector<double> SolveSvm(const SparseRows& x, const std::vector<int8_t>& y, size_t dims,
                             double c, uint64_t seed) {
  const size_t n = y.size();
  std::vector<double> w(dims + 1, 0.0);
  std::vector<double> alpha(n, 0.0);
  std::vector<double> qd(n);
  const double diag = 0.5 / c;
  for (size_t i = 0; i < n; ++i) {
    double s = diag + 1.0;  // + bias feature
    for (size_t k = x.offsets[i]; k < x.offsets[i + 1]; ++k) {
      s += static_cast<double>(x.value[k]) * x.value[k];
    }
    qd[i] = s;
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  size_t active = n;
  double pg_max_old = std::numeric_limits<double>::infinity();
  constexpr double kEps = 0.1;
  for (int iter = 0; iter < 1000; ++iter) {
    double pg_max = -std::numeric_limits<double>::infinity();
    double pg_min = std::numeric_limits<double>::infinity();
    for (size_t s = 0; s < active; ++s) {
      std::swap(order[s], order[s + rng() % (active - s)]);
    }
    for (size_t s = 0; s < active; ++s) {
      const size_t i = order[s];
      const double yi = y[i];
      double dot = w[dims];
      for (size_t k = x.offsets[i]; k < x.offsets[i + 1]; ++k) {
        dot += w[x.index[k]] * x.value[k];
      }
      const double g = yi * dot - 1 + alpha[i] * diag;
      double pg = 0;
      if (alpha[i] == 0) {
        if (g > pg_max_old) {
          --active;
          std::swap(order[s], order[active]);
          --s;
          continue;
        }
        if (g < 0) {
          pg = g;
        }
      } else {
        pg = g;
      }
      pg_max = std::max(pg_max, pg);
      pg_min = std::min(pg_min, pg);
      if (std::abs(pg) > 1e-12) {
        const double old = alpha[i];
        alpha[i] = std::max(old - g / qd[i], 0.0);
        const double d = (alpha[i] - old) * yi;
        for (size_t k = x.offsets[i]; k < x.offsets[i + 1]; ++k) {
          w[x.index[k]] += d * x.value[k];
        }
        w[dims] += d;
      }
    }
    if (pg_max - pg_min <= kEps) {
      if (active == n) {
        break;
      }
      active = n;
      pg_max_old = std::numeric_limits<double>::infinity();
      continue;
    }
    pg_max_old = pg_max <= 0 ? std::numeric_limits<double>::infinity() : pg_max;
  }
  return w;
}

StatusOr<std::unique_ptr<Model>> TrainLinear(const Corpus& corpus, std::span<const uint32_t> rows,
                                             const ModelOptions& options) {
  const std::vector<uint64_t>& hashes = CorpusAccess::hashes(corpus);
  std::vector<uint32_t> df(hashes.size(), 0);
  std::vector<uint32_t> spam_df(hashes.size(), 0);
  double spam_presence = 0;
  double ham_presence = 0;
  for (uint32_t r : rows) {
    const bool spam = corpus.spam(r);
    for (const auto& e : CorpusAccess::row(corpus, r)) {
      ++df[e.id];
      spam_df[e.id] += spam ? 1 : 0;
    }
  }
  // Vocabulary in corpus order (deterministic), then idf.
  std::vector<uint32_t> local(hashes.size(), FeatureTable::kMissing);
  std::vector<uint64_t> keys;
  std::vector<float> idf;
  const double n = static_cast<double>(rows.size());
  const auto min_df = static_cast<uint32_t>(options.min_df);
  for (size_t id = 0; id < hashes.size(); ++id) {
    if (df[id] >= min_df) {
      spam_presence += spam_df[id] + 1.0;
      ham_presence += df[id] - spam_df[id] + 1.0;
    }
  }
  for (size_t id = 0; id < hashes.size(); ++id) {
    if (df[id] >= min_df) {
      local[id] = static_cast<uint32_t>(keys.size());
      keys.push_back(hashes[id]);
      double weight = std::log((1 + n) / (1 + df[id])) + 1;
      if (options.nb_scale > 0) {
        const double ratio = std::log((spam_df[id] + 1.0) / spam_presence) -
                             std::log((df[id] - spam_df[id] + 1.0) / ham_presence);
        weight *= options.nb_scale == 0.5 ? std::sqrt(std::abs(ratio))
                                          : std::pow(std::abs(ratio), options.nb_scale);
      }
      idf.push_back(static_cast<float>(weight));
    }
  }
  SparseRows x;
  std::vector<int8_t> y;
  y.reserve(rows.size());
  for (uint32_t r : rows) {
    double norm2 = 0;
    const size_t start = x.index.size();
    for (const auto& e : CorpusAccess::row(corpus, r)) {
      if (local[e.id] == FeatureTable::kMissing) {
        continue;
      }
      const double v = SublinearTf(e.tf) * idf[local[e.id]];
      x.index.push_back(local[e.id]);
      x.value.push_back(static_cast<float>(v));
      norm2 += v * v;
    }
    if (norm2 > 0) {
      const double inv = 1 / std::sqrt(norm2);
      for (size_t k = start; k < x.value.size(); ++k) {
        x.value[k] = static_cast<float>(x.value[k] * inv);
      }
    }
    x.offsets.push_back(x.index.size());
    y.push_back(corpus.spam(r) ? 1 : -1);
  }
  std::vector<double> w = SolveSvm(x, y, keys.size(), options.c, options.seed);
  std::vector<float> weights(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    weights[i] = static_cast<float>(w[i]);
  }
  return std::unique_ptr<Model>(std::make_unique<LinearModel>(keys, idf, weights, w.back()));
}

// ---- naive Bayes --------------------------------------------------------------------------

class BayesModel final : public Model {
 public:
  explicit BayesModel(double alpha) : alpha_(alpha) {}

  Family family() const override { return Family::kNaiveBayes; }
  bool incremental() const override { return true; }
  size_t size() const override {
    std::shared_lock lock(mu_);
    return live_;
  }

  double Score(std::span<const uint64_t> features) const override {
    std::shared_lock lock(mu_);
    const Totals t = ComputeTotals();
    double score = t.prior;
    ForEachKnown(features, [&](uint32_t idx, uint64_t) { score += Ratio(idx, t); });
    return score;
  }

  double Explain(std::span<const uint64_t> features, size_t k, std::vector<Contribution>& spam,
                 std::vector<Contribution>& ham) const override {
    std::vector<Contribution> all;
    double score = 0;
    {
      std::shared_lock lock(mu_);
      const Totals t = ComputeTotals();
      score = t.prior;
      ForEachKnown(features, [&](uint32_t idx, uint64_t h) {
        all.push_back({h, Ratio(idx, t)});
        score += all.back().weight;
      });
    }
    TopK(all, k, spam, ham);
    return score;
  }

  Status Learn(std::span<const uint64_t> features, bool spam, bool unlearn) override {
    const std::vector<uint64_t> distinct = Distinct(features);
    std::unique_lock lock(mu_);
    uint64_t& docs = spam ? spam_docs_ : ham_docs_;
    std::vector<uint32_t>& counts = spam ? spam_ : ham_;
    uint64_t& total = spam ? spam_total_ : ham_total_;
    if (unlearn) {
      if (docs == 0) {
        return FailedPreconditionError(std::string("the model has no ") + (spam ? "spam" : "ham") +
                                       " message to unlearn");
      }
      // Unlearning a message that was never learned must not drive counts negative: check
      // first, change nothing if any feature is missing.
      for (uint64_t h : distinct) {
        const uint32_t idx = table_.Find(h);
        if (idx == FeatureTable::kMissing || counts[idx] == 0) {
          return FailedPreconditionError(
              "this message was not learned with that label, so it cannot be unlearned");
        }
      }
      --docs;
      for (uint64_t h : distinct) {
        const uint32_t idx = table_.Find(h);
        --counts[idx];
        --total;
        if ((spam_[idx] | ham_[idx]) == 0) {
          --live_;
        }
      }
      return OkStatus();
    }
    ++docs;
    for (uint64_t h : distinct) {
      const uint32_t idx = Insert(h);
      if ((spam_[idx] | ham_[idx]) == 0) {
        ++live_;
      }
      ++counts[idx];
      ++total;
    }
    return OkStatus();
  }

  // Bulk training: presence counts of each row.
  void AddRow(std::span<const uint64_t> hashes, bool spam) { (void)Learn(hashes, spam, false); }

  void Serialize(std::string& out) const override {
    std::shared_lock lock(mu_);
    PutU64(out, kBayesTag);
    PutF64(out, alpha_);
    PutU64(out, spam_docs_);
    PutU64(out, ham_docs_);
    PutU64(out, live_);
    for (size_t i = 0; i < keys_.size(); ++i) {
      if ((spam_[i] | ham_[i]) != 0) {
        PutU64(out, keys_[i]);
        PutU64(out, (static_cast<uint64_t>(spam_[i]) << 32) | ham_[i]);
      }
    }
  }

  static StatusOr<std::unique_ptr<Model>> Read(std::string_view& in) {
    double alpha;
    uint64_t spam_docs;
    uint64_t ham_docs;
    uint64_t n;
    if (!GetF64(in, alpha) || !GetU64(in, spam_docs) || !GetU64(in, ham_docs) || !GetU64(in, n) ||
        n > in.size() / 16 || !(alpha > 0) || !std::isfinite(alpha)) {
      return DataLossError("spam model: truncated naive Bayes model");
    }
    auto m = std::make_unique<BayesModel>(alpha);
    m->spam_docs_ = spam_docs;
    m->ham_docs_ = ham_docs;
    m->table_.Reserve(n);
    for (size_t i = 0; i < n; ++i) {
      uint64_t key = 0;
      uint64_t packed = 0;
      GetU64(in, key);
      GetU64(in, packed);
      const uint32_t idx = m->Insert(key);
      if (idx != i || packed == 0) {
        return DataLossError("spam model: corrupt naive Bayes model");
      }
      m->spam_[idx] = static_cast<uint32_t>(packed >> 32);
      m->ham_[idx] = static_cast<uint32_t>(packed);
      m->spam_total_ += m->spam_[idx];
      m->ham_total_ += m->ham_[idx];
    }
    m->live_ = n;
    return std::unique_ptr<Model>(std::move(m));
  }

 private:
  struct Totals {
    double prior;
    double log_spam_denominator;
    double log_ham_denominator;
  };

  static const std::vector<uint64_t>& Distinct(std::span<const uint64_t> features) {
    thread_local std::vector<uint64_t> distinct;
    distinct.assign(features.begin(), features.end());
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    return distinct;
  }

  // Calls f(index, hash) once per distinct feature of `features` with a non-zero count,
  // deduplicating through per-thread arrays stamped with a call number. REQUIRES: mu_ held.
  template <typename F>
  void ForEachKnown(std::span<const uint64_t> features, F&& f) const {
    struct Scratch {
      std::vector<uint32_t> stamp;
      uint32_t epoch = 0;
    };
    thread_local Scratch scratch;
    if (scratch.stamp.size() < keys_.size()) {
      scratch.stamp.resize(keys_.size() + keys_.size() / 4, 0);
    }
    if (++scratch.epoch == 0) {
      std::fill(scratch.stamp.begin(), scratch.stamp.end(), 0);
      scratch.epoch = 1;
    }
    for (uint64_t h : features) {
      const uint32_t idx = table_.Find(h);
      if (idx == FeatureTable::kMissing || scratch.stamp[idx] == scratch.epoch) {
        continue;
      }
      scratch.stamp[idx] = scratch.epoch;
      if ((spam_[idx] | ham_[idx]) != 0) {
        f(idx, h);
      }
    }
  }

  // REQUIRES: mu_ held.
  Totals ComputeTotals() const {
    const double v = static_cast<double>(live_);
    return {
        std::log((static_cast<double>(spam_docs_) + 1.0) / (static_cast<double>(ham_docs_) + 1.0)),
        std::log(static_cast<double>(spam_total_) + alpha_ * v),
        std::log(static_cast<double>(ham_total_) + alpha_ * v)};
  }
  double Ratio(uint32_t idx, const Totals& t) const {
    return std::log((spam_[idx] + alpha_) / (ham_[idx] + alpha_)) - t.log_spam_denominator +
           t.log_ham_denominator;
  }

  // REQUIRES: mu_ held exclusively (or construction).
  uint32_t Insert(uint64_t key) {
    const uint32_t idx = table_.Insert(key);
    if (idx == keys_.size()) {
      keys_.push_back(key);
      spam_.push_back(0);
      ham_.push_back(0);
    }
    return idx;
  }

  const double alpha_;
  mutable std::shared_mutex mu_;  // guards everything below
  FeatureTable table_;
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> spam_;  // messages of each class that contain the feature
  std::vector<uint32_t> ham_;
  uint64_t spam_docs_ = 0;
  uint64_t ham_docs_ = 0;
  uint64_t spam_total_ = 0;  // sum of spam_
  uint64_t ham_total_ = 0;
  uint64_t live_ = 0;  // features with a non-zero count
};

StatusOr<std::unique_ptr<Model>> TrainBayes(const Corpus& corpus, std::span<const uint32_t> rows,
                                            const ModelOptions& options) {
  const std::vector<uint64_t>& hashes = CorpusAccess::hashes(corpus);
  auto m = std::make_unique<BayesModel>(options.alpha);
  std::vector<uint64_t> row;
  for (uint32_t r : rows) {
    row.clear();
    for (const auto& e : CorpusAccess::row(corpus, r)) {
      row.push_back(hashes[e.id]);
    }
    m->AddRow(row, corpus.spam(r));
  }
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace

StatusOr<std::unique_ptr<Model>> TrainModel(const Corpus& corpus, std::span<const uint32_t> rows,
                                            const ModelOptions& options) {
  EVO_RETURN_IF_ERROR(Validate(options));
  std::vector<uint32_t> all;
  if (rows.empty()) {
    all.resize(corpus.size());
    std::iota(all.begin(), all.end(), 0);
    rows = all;
  }
  size_t spam = 0;
  for (uint32_t r : rows) {
    spam += corpus.spam(r) ? 1 : 0;
  }
  if (spam == 0 || spam == rows.size()) {
    return InvalidArgumentError("training needs at least one spam and one ham message");
  }
  if (options.family == Family::kLinear) {
    return TrainLinear(corpus, rows, options);
  }
  return TrainBayes(corpus, rows, options);
}

StatusOr<std::unique_ptr<Model>> TrainModel(std::span<const Example> examples,
                                            const ModelOptions& options) {
  const Corpus corpus(examples);
  return TrainModel(corpus, {}, options);
}

StatusOr<std::unique_ptr<Model>> DeserializeModel(std::string_view& in) {
  uint64_t tag;
  if (!GetU64(in, tag)) {
    return DataLossError("spam model: empty");
  }
  if (tag == kLinearTag) {
    return LinearModel::Read(in);
  }
  if (tag == kBayesTag) {
    return BayesModel::Read(in);
  }
  return DataLossError("spam model: unknown format");
}

}  // namespace evo::spam
