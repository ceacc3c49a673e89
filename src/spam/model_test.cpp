#include "spam/model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "spam/test_util.hpp"

namespace evo::spam {
namespace {

using testing::AllProbes;
using testing::Features;
using testing::HamProbes;
using testing::SpamProbes;
using testing::SyntheticExamples;

std::unique_ptr<Model> Train(Family family, const std::vector<Example>& examples) {
  ModelOptions options;
  options.family = family;
  auto model = TrainModel(examples, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(model).value() : nullptr;
}

std::vector<double> ProbeScores(const Model& model) {
  std::vector<double> out;
  for (const std::string& p : AllProbes()) {
    out.push_back(model.Score(Features(p)));
  }
  return out;
}

// Bitwise equality: the exactness claims are about bits, not closeness.
bool SameBits(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

std::string Bytes(const Model& model) {
  std::string out;
  model.Serialize(out);
  return out;
}

class ModelFamilyTest : public ::testing::TestWithParam<Family> {};

INSTANTIATE_TEST_SUITE_P(Families, ModelFamilyTest,
                         ::testing::Values(Family::kLinear, Family::kNaiveBayes),
                         [](const auto& info) { return std::string(FamilyName(info.param)); });

TEST_P(ModelFamilyTest, TrainedModelSeparatesTheTrainingClasses) {
  const std::vector<Example> examples = SyntheticExamples();
  auto model = Train(GetParam(), examples);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->family(), GetParam());
  EXPECT_GT(model->size(), 0u);
  double lowest_spam = std::numeric_limits<double>::infinity();
  double highest_ham = -std::numeric_limits<double>::infinity();
  for (const Example& e : examples) {
    const double s = model->Score(e.features);
    ASSERT_TRUE(std::isfinite(s));
    if (e.spam) {
      lowest_spam = std::min(lowest_spam, s);
    } else {
      highest_ham = std::max(highest_ham, s);
    }
  }
  EXPECT_GT(lowest_spam, highest_ham);
  EXPECT_GT(lowest_spam, 0);
  EXPECT_LT(highest_ham, 0);
}

TEST_P(ModelFamilyTest, UnseenMessagesLeanTheRightWay) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  for (const std::string& p : SpamProbes()) {
    EXPECT_GT(model->Score(Features(p)), 0) << p;
  }
  for (const std::string& p : HamProbes()) {
    EXPECT_LT(model->Score(Features(p)), 0) << p;
  }
}

TEST_P(ModelFamilyTest, TrainingIsDeterministic) {
  auto a = Train(GetParam(), SyntheticExamples());
  auto b = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Bytes(*a), Bytes(*b));
}

TEST_P(ModelFamilyTest, ScoreOfNoFeaturesIsFinite) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(std::isfinite(model->Score({})));
  EXPECT_TRUE(std::isfinite(model->Score(Features("never seen words zqxj"))));
}

TEST_P(ModelFamilyTest, TrainingOnSelectedRowsUsesOnlyThoseRows) {
  const std::vector<Example> examples = SyntheticExamples();
  const Corpus corpus(examples);
  ASSERT_EQ(corpus.size(), examples.size());
  std::vector<uint32_t> rows;
  std::vector<Example> subset;
  for (uint32_t r = 0; r < examples.size(); r += 2) {
    rows.push_back(r);
    subset.push_back(examples[r]);
  }
  // Rows 0, 2, 4... alternate spam and ham only if the corpus interleaves; check both exist.
  rows.push_back(1);
  subset.push_back(examples[1]);
  ASSERT_TRUE(corpus.spam(0));
  ASSERT_FALSE(corpus.spam(1));
  ModelOptions options;
  options.family = GetParam();
  auto from_rows = TrainModel(corpus, rows, options);
  auto from_subset = TrainModel(subset, options);
  ASSERT_TRUE(from_rows.ok()) << from_rows.status();
  ASSERT_TRUE(from_subset.ok()) << from_subset.status();
  const std::vector<double> a = ProbeScores(**from_rows);
  const std::vector<double> b = ProbeScores(**from_subset);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-9) << "probe " << i;
  }
}

TEST_P(ModelFamilyTest, SerializeRoundTripGivesIdenticalScores) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::string bytes = Bytes(*model);
  std::string_view in = bytes;
  auto copy = DeserializeModel(in);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_TRUE(in.empty()) << in.size() << " bytes left";
  EXPECT_EQ((*copy)->family(), GetParam());
  EXPECT_EQ((*copy)->size(), model->size());
  EXPECT_EQ(Bytes(**copy), bytes);
  const std::vector<double> before = ProbeScores(*model);
  const std::vector<double> after = ProbeScores(**copy);
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(SameBits(before[i], after[i]))
        << "probe " << i << ": " << before[i] << " vs " << after[i];
  }
}

TEST_P(ModelFamilyTest, DeserializeReadsOnlyItsOwnBytes) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  const std::string bytes = Bytes(*model) + "trailer";
  std::string_view in = bytes;
  ASSERT_TRUE(DeserializeModel(in).ok());
  EXPECT_EQ(in, "trailer");
}

TEST_P(ModelFamilyTest, EveryTruncationIsDataLoss) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  const std::string bytes = Bytes(*model);
  ASSERT_GT(bytes.size(), 8u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string_view in(bytes.data(), n);
    auto copy = DeserializeModel(in);
    ASSERT_EQ(copy.status().code(), StatusCode::kDataLoss)
        << "truncated to " << n << " of " << bytes.size() << " bytes";
  }
}

TEST_P(ModelFamilyTest, RandomByteFlipsNeverCrash) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  const std::string bytes = Bytes(*model);
  std::mt19937_64 rng(42);
  const std::vector<uint64_t> probe = Features(SpamProbes()[0]);
  int rejected = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string corrupt = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      char& byte = corrupt[rng() % corrupt.size()];
      byte = static_cast<char>(static_cast<unsigned char>(byte) ^ (1 + rng() % 255));
    }
    std::string_view in = corrupt;
    auto copy = DeserializeModel(in);
    if (!copy.ok()) {
      ASSERT_EQ(copy.status().code(), StatusCode::kDataLoss) << copy.status();
      ++rejected;
      continue;
    }
    // Undetected corruption (there is no checksum) must still give a usable model.
    (void)(*copy)->Score(probe);
    std::vector<Contribution> spam;
    std::vector<Contribution> ham;
    (*copy)->Explain(probe, 3, spam, ham);
    std::string again;
    (*copy)->Serialize(again);
  }
  EXPECT_GT(rejected, 0);
}

TEST_P(ModelFamilyTest, CorruptTagIsDataLoss) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  std::string bytes = Bytes(*model);
  bytes[0] ^= 0x5a;
  std::string_view in = bytes;
  EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss);
}

TEST_P(ModelFamilyTest, ImpossibleFeatureCountIsDataLoss) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  std::string bytes = Bytes(*model);
  // The feature count is the last header word before the entries (16 bytes each).
  const size_t count_at = bytes.size() - 16 * model->size() - 8;
  for (uint64_t n : {model->size() + 1, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string corrupt = bytes.substr(0, count_at);
    PutU64(corrupt, n);
    corrupt += bytes.substr(count_at + 8);
    std::string_view in = corrupt;
    EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss) << n;
  }
}

TEST_P(ModelFamilyTest, DuplicateFeatureIsDataLoss) {
  auto model = Train(GetParam(), SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  ASSERT_GE(model->size(), 2u);
  std::string bytes = Bytes(*model);
  const size_t first = bytes.size() - 16 * model->size();
  // The second entry's key := the first entry's key.
  std::memcpy(bytes.data() + first + 16, bytes.data() + first, 8);
  std::string_view in = bytes;
  EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss);
}

TEST(DeserializeModel, GarbageIsDataLoss) {
  for (std::string_view garbage : {std::string_view(""), std::string_view("hello"),
                                   std::string_view("0123456789abcdef0123456789")}) {
    std::string_view in = garbage;
    EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss) << garbage;
  }
}

TEST(DeserializeModel, NonFiniteLinearWeightIsDataLoss) {
  auto model = Train(Family::kLinear, SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  std::string bytes = Bytes(*model);
  // Entry 0: key (8 bytes), then idf (low 4) and weight (high 4) of the packed word.
  const size_t weight_at = bytes.size() - 16 * model->size() + 8 + 4;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(bytes.data() + weight_at, &nan, 4);
  std::string_view in = bytes;
  EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss);
}

TEST(DeserializeModel, ZeroCountNaiveBayesEntryIsDataLoss) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples(6, 6));
  ASSERT_NE(model, nullptr);
  std::string bytes = Bytes(*model);
  const size_t counts_at = bytes.size() - 16 * model->size() + 8;
  std::memset(bytes.data() + counts_at, 0, 8);
  std::string_view in = bytes;
  EXPECT_EQ(DeserializeModel(in).status().code(), StatusCode::kDataLoss);
}

TEST_P(ModelFamilyTest, OneClassIsInvalidArgument) {
  ModelOptions options;
  options.family = GetParam();
  const std::vector<Example> spam_only = SyntheticExamples(10, 0);
  EXPECT_EQ(TrainModel(spam_only, options).status().code(), StatusCode::kInvalidArgument);
  const std::vector<Example> ham_only = SyntheticExamples(0, 10);
  EXPECT_EQ(TrainModel(ham_only, options).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TrainModel(std::vector<Example>{}, options).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(ModelFamilyTest, OneClassAmongSelectedRowsIsInvalidArgument) {
  const std::vector<Example> examples = SyntheticExamples(5, 5);
  const Corpus corpus(examples);
  ModelOptions options;
  options.family = GetParam();
  const std::vector<uint32_t> spam_rows = {0, 2, 4};  // interleaved: even rows are spam
  EXPECT_EQ(TrainModel(corpus, spam_rows, options).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(ModelFamilyTest, BadOptionsAreInvalidArgument) {
  const std::vector<Example> examples = SyntheticExamples(5, 5);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<ModelOptions> bad;
  for (double c : {0.0, -1.0, nan, inf}) {
    bad.push_back({.c = c});
  }
  for (int min_df : {0, -3}) {
    bad.push_back({.min_df = min_df});
  }
  for (double alpha : {0.0, -0.5, nan, inf}) {
    bad.push_back({.alpha = alpha});
  }
  for (double nb_scale : {-0.1, 5.0, nan}) {
    bad.push_back({.nb_scale = nb_scale});
  }
  for (ModelOptions options : bad) {
    options.family = GetParam();
    EXPECT_EQ(Validate(options).code(), StatusCode::kInvalidArgument)
        << "c=" << options.c << " min_df=" << options.min_df << " alpha=" << options.alpha
        << " nb_scale=" << options.nb_scale;
    EXPECT_EQ(TrainModel(examples, options).status().code(), StatusCode::kInvalidArgument)
        << "c=" << options.c << " min_df=" << options.min_df << " alpha=" << options.alpha
        << " nb_scale=" << options.nb_scale;
  }
}

TEST(ModelOptions, DefaultsAreValid) { EXPECT_TRUE(Validate(ModelOptions{}).ok()); }

TEST(Family, NamesRoundTrip) {
  EXPECT_EQ(FamilyName(Family::kLinear), "linear");
  EXPECT_EQ(FamilyName(Family::kNaiveBayes), "nb");
  for (Family f : {Family::kLinear, Family::kNaiveBayes}) {
    auto parsed = ParseFamily(FamilyName(f));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, f);
  }
  EXPECT_EQ(*ParseFamily("svm"), Family::kLinear);
  EXPECT_EQ(*ParseFamily("bayes"), Family::kNaiveBayes);
  EXPECT_EQ(ParseFamily("forest").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseFamily("").status().code(), StatusCode::kInvalidArgument);
}

TEST(LinearModel, IsNotIncremental) {
  auto model = Train(Family::kLinear, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(model->incremental());
  const std::vector<double> before = ProbeScores(*model);
  const std::vector<uint64_t> f = Features(SpamProbes()[0]);
  EXPECT_EQ(model->Learn(f, true, false).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(model->Learn(f, true, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ProbeScores(*model), before);
}

TEST(LinearModel, MinDfDropsRareFeatures) {
  const std::vector<Example> examples = SyntheticExamples();
  ModelOptions options;
  options.min_df = 1;
  auto all = TrainModel(examples, options);
  options.min_df = 2;
  auto common = TrainModel(examples, options);
  ASSERT_TRUE(all.ok());
  ASSERT_TRUE(common.ok());
  EXPECT_LT((*common)->size(), (*all)->size());
}

TEST(NaiveBayesModel, IsIncremental) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->incremental());
}

TEST(NaiveBayesModel, LearningAsSpamRaisesTheScore) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::vector<uint64_t> f = Features(HamProbes()[0]);
  const double before = model->Score(f);
  ASSERT_TRUE(model->Learn(f, true, false).ok());
  EXPECT_GT(model->Score(f), before);
}

TEST(NaiveBayesModel, UnlearnRestoresTheExactFormerState) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::vector<double> before = ProbeScores(*model);
  const std::string bytes_before = Bytes(*model);
  const size_t size_before = model->size();
  // Known words and words the model has never seen (new features, removed again).
  const std::vector<std::string> lessons = {
      "Subject: meeting\nthe budget review brand-new-word zorblax 99999\n", SpamProbes()[1],
      HamProbes()[2]};
  for (const std::string& lesson : lessons) {
    for (bool spam : {true, false}) {
      const std::vector<uint64_t> f = Features(lesson);
      ASSERT_TRUE(model->Learn(f, spam, false).ok());
      ASSERT_NE(ProbeScores(*model), before) << "learning changed nothing: " << lesson;
      ASSERT_TRUE(model->Learn(f, spam, true).ok());
      const std::vector<double> after = ProbeScores(*model);
      for (size_t i = 0; i < before.size(); ++i) {
        EXPECT_TRUE(SameBits(before[i], after[i])) << lesson << " spam=" << spam << " probe " << i
                                                   << ": " << before[i] << " vs " << after[i];
      }
      EXPECT_EQ(Bytes(*model), bytes_before) << lesson << " spam=" << spam;
      EXPECT_EQ(model->size(), size_before);
    }
  }
}

TEST(NaiveBayesModel, SeveralLearnsUnlearnedInAnyOrderRestoreTheFormerState) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::vector<double> before = ProbeScores(*model);
  const std::string bytes_before = Bytes(*model);
  const std::vector<uint64_t> a = Features("Subject: x\nfirst lesson words\n");
  const std::vector<uint64_t> b = Features("Subject: y\nsecond lesson words cheap\n");
  ASSERT_TRUE(model->Learn(a, true, false).ok());
  ASSERT_TRUE(model->Learn(b, false, false).ok());
  ASSERT_TRUE(model->Learn(a, true, true).ok());
  ASSERT_TRUE(model->Learn(b, false, true).ok());
  const std::vector<double> after = ProbeScores(*model);
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(SameBits(before[i], after[i])) << "probe " << i;
  }
  EXPECT_EQ(Bytes(*model), bytes_before);
}

TEST(NaiveBayesModel, LearnedStateSurvivesSerialization) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(
      model->Learn(Features("Subject: new\nnovel words for the model\n"), true, false).ok());
  const std::string bytes = Bytes(*model);
  std::string_view in = bytes;
  auto copy = DeserializeModel(in);
  ASSERT_TRUE(copy.ok()) << copy.status();
  const std::vector<double> a = ProbeScores(*model);
  const std::vector<double> b = ProbeScores(**copy);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(SameBits(a[i], b[i])) << "probe " << i;
  }
}

TEST(NaiveBayesModel, UnlearningFromAnEmptyClassIsFailedPrecondition) {
  // One spam message: unlearning it empties the spam class; a second unlearn has nothing
  // left to take back.
  std::vector<Example> examples = SyntheticExamples(1, 4);
  auto model = Train(Family::kNaiveBayes, examples);
  ASSERT_NE(model, nullptr);
  const Example& only_spam = examples[0];
  ASSERT_TRUE(only_spam.spam);
  ASSERT_TRUE(model->Learn(only_spam.features, true, true).ok());
  EXPECT_EQ(model->Learn(only_spam.features, true, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(model->Learn({}, true, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::isfinite(model->Score(only_spam.features)));
}

TEST(NaiveBayesModel, UnlearningWhatWasNeverLearnedIsFailedPreconditionAndChangesNothing) {
  auto model = Train(Family::kNaiveBayes, SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::string bytes_before = Bytes(*model);
  // Known words and one the model never saw.
  const std::vector<uint64_t> f = Features("Subject: meeting\nreport qwzzyx\n");
  EXPECT_EQ(model->Learn(f, false, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Bytes(*model), bytes_before);
}

TEST_P(ModelFamilyTest, ExplainReturnsAtMostKPerSideLargestFirst) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  // A message with words of both classes, so that both sides have candidates.
  const std::vector<uint64_t> f =
      Features("Subject: cheap meeting\nviagra pills offer with the project budget report\n");
  for (size_t k : {0u, 1u, 3u, 5u, 1000u}) {
    std::vector<Contribution> spam = {{1, 1.0}};  // replaced, not appended to
    std::vector<Contribution> ham = {{2, -1.0}};
    model->Explain(f, k, spam, ham);
    EXPECT_LE(spam.size(), k);
    EXPECT_LE(ham.size(), k);
    if (k >= 3) {
      EXPECT_GE(spam.size(), 3u) << "k=" << k;
      EXPECT_GE(ham.size(), 3u) << "k=" << k;
    }
    for (size_t i = 0; i < spam.size(); ++i) {
      EXPECT_GT(spam[i].weight, 0) << "k=" << k << " i=" << i;
      EXPECT_NE(std::find(f.begin(), f.end(), spam[i].feature), f.end());
      if (i > 0) {
        EXPECT_GE(std::abs(spam[i - 1].weight), std::abs(spam[i].weight)) << "k=" << k;
      }
    }
    for (size_t i = 0; i < ham.size(); ++i) {
      EXPECT_LT(ham[i].weight, 0) << "k=" << k << " i=" << i;
      EXPECT_NE(std::find(f.begin(), f.end(), ham[i].feature), f.end());
      if (i > 0) {
        EXPECT_GE(std::abs(ham[i - 1].weight), std::abs(ham[i].weight)) << "k=" << k;
      }
    }
  }
}

TEST_P(ModelFamilyTest, ExplainListsEachFeatureOnce) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  const std::vector<uint64_t> f = Features("cheap cheap cheap viagra viagra meeting meeting");
  std::vector<Contribution> spam;
  std::vector<Contribution> ham;
  model->Explain(f, 100, spam, ham);
  std::vector<uint64_t> seen;
  for (const auto* side : {&spam, &ham}) {
    for (const Contribution& c : *side) {
      seen.push_back(c.feature);
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
}

TEST_P(ModelFamilyTest, ExplainOfUnknownFeaturesIsEmpty) {
  auto model = Train(GetParam(), SyntheticExamples());
  ASSERT_NE(model, nullptr);
  std::vector<Contribution> spam;
  std::vector<Contribution> ham;
  model->Explain(Features("zqxj vbnmq"), 5, spam, ham);
  EXPECT_TRUE(spam.empty());
  EXPECT_TRUE(ham.empty());
}

TEST(Framing, U64AndF64RoundTripLittleEndian) {
  std::string out;
  PutU64(out, 0x0102030405060708ULL);
  PutF64(out, -1.5);
  ASSERT_EQ(out.size(), 16u);
  EXPECT_EQ(out[0], '\x08');
  EXPECT_EQ(out[7], '\x01');
  std::string_view in = out;
  uint64_t u = 0;
  double d = 0;
  ASSERT_TRUE(GetU64(in, u));
  ASSERT_TRUE(GetF64(in, d));
  EXPECT_EQ(u, 0x0102030405060708ULL);
  EXPECT_EQ(d, -1.5);
  EXPECT_TRUE(in.empty());
  EXPECT_FALSE(GetU64(in, u));
  std::string_view short_in = std::string_view(out).substr(0, 7);
  EXPECT_FALSE(GetU64(short_in, u));
  EXPECT_EQ(short_in.size(), 7u);  // not consumed
}

}  // namespace
}  // namespace evo::spam
