#include "spam/eval.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "spam/test_util.hpp"

#ifndef EVO_ENRON_DIR
#error "EVO_ENRON_DIR must name the unpacked Enron1 corpus (set in src/spam/CMakeLists.txt)"
#endif

namespace evo::spam {
namespace {

namespace fs = std::filesystem;
using testing::SyntheticCorpus;
using testing::TempDir;

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// --- split ----------------------------------------------------------------------------------

// Expected buckets from Python: int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10.
TEST(SplitBucket, MatchesPythonSha256Prefix) {
  struct Case {
    const char* name;
    int bucket;
  };
  const Case cases[] = {
      {"0009.1999-12-14.farmer.ham.txt", 0},
      {"0003.1999-12-14.farmer.ham.txt", 1},  // 368a9bb3
      {"0010.1999-12-14.farmer.ham.txt", 2},
      {"0011.1999-12-14.farmer.ham.txt", 3},
      {"0007.1999-12-14.farmer.ham.txt", 4},
      {"0015.1999-12-15.farmer.ham.txt", 5},
      {"0004.1999-12-14.farmer.ham.txt", 6},
      {"0001.1999-12-10.farmer.ham.txt", 7},  // 749f527d
      {"0016.1999-12-15.farmer.ham.txt", 8},
      {"0023.1999-12-16.farmer.ham.txt", 9},
      {"0006.2003-12-18.GP.spam.txt", 0},  // de9c7762: top bit set, read unsigned
      {"0008.2003-12-18.GP.spam.txt", 4},
      {"abc", 9},  // ba7816bf
      {"", 0},     // e3b0c442
      {"caf\xC3\xA9", 4},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SplitBucket(c.name), c.bucket) << c.name;
  }
}

TEST(SplitBucket, BucketsBelowThreeAreTheTestSet) {
  EXPECT_TRUE(IsTest("0009.1999-12-14.farmer.ham.txt"));   // 0
  EXPECT_TRUE(IsTest("0010.1999-12-14.farmer.ham.txt"));   // 2
  EXPECT_FALSE(IsTest("0011.1999-12-14.farmer.ham.txt"));  // 3
  EXPECT_FALSE(IsTest("0023.1999-12-16.farmer.ham.txt"));  // 9
}

// --- corpus loading -------------------------------------------------------------------------

TEST(LoadCorpus, MissingDirectoryIsNotFound) {
  TempDir dir;
  EXPECT_EQ(LoadCorpus(dir.path() / "nope").status().code(), StatusCode::kNotFound);
}

TEST(LoadCorpus, RegularFileIsNotFound) {
  TempDir dir;
  WriteFile(dir.path() / "file", "x");
  EXPECT_EQ(LoadCorpus(dir.path() / "file").status().code(), StatusCode::kNotFound);
}

TEST(LoadCorpus, DirectoryWithoutHamOrSpamIsNotFound) {
  TempDir dir;
  WriteFile(dir.path() / "other" / "a.txt", "Subject: x\ny\n");
  EXPECT_EQ(LoadCorpus(dir.path()).status().code(), StatusCode::kNotFound);
}

TEST(LoadCorpus, ReadsBothClassesSortedWithBasenames) {
  TempDir dir;
  WriteFile(dir.path() / "ham" / "b.txt", "ham b");
  WriteFile(dir.path() / "ham" / "a.txt", "ham a");
  WriteFile(dir.path() / "spam" / "c.txt", std::string("spam\0c", 6));
  auto corpus = LoadCorpus(dir.path());
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->size(), 3u);
  EXPECT_EQ((*corpus)[0].name, "a.txt");
  EXPECT_EQ((*corpus)[0].text, "ham a");
  EXPECT_FALSE((*corpus)[0].spam);
  EXPECT_EQ((*corpus)[1].name, "b.txt");
  EXPECT_FALSE((*corpus)[1].spam);
  EXPECT_EQ((*corpus)[2].name, "c.txt");
  EXPECT_EQ((*corpus)[2].text, std::string("spam\0c", 6));  // bytes as they are
  EXPECT_TRUE((*corpus)[2].spam);
}

TEST(LoadCorpus, OneClassDirectoryIsEnoughToLoad) {
  TempDir dir;
  WriteFile(dir.path() / "spam" / "only.txt", "buy");
  auto corpus = LoadCorpus(dir.path());
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->size(), 1u);
  EXPECT_TRUE((*corpus)[0].spam);
}

TEST(LoadCorpus, SubdirectoriesAreNotRead) {
  TempDir dir;
  WriteFile(dir.path() / "ham" / "a.txt", "top");
  WriteFile(dir.path() / "ham" / "nested" / "b.txt", "deep");
  auto corpus = LoadCorpus(dir.path());
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->size(), 1u);
  EXPECT_EQ((*corpus)[0].name, "a.txt");
}

TEST(LoadCorpus, FileOverTheLimitIsInvalidArgument) {
  TempDir dir;
  WriteFile(dir.path() / "ham" / "a.txt", std::string(100, 'a'));
  EXPECT_EQ(LoadCorpus(dir.path(), 99).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(LoadCorpus(dir.path(), 100).ok());
}

TEST(LoadCorpus, CorpusOverTheTotalLimitIsInvalidArgument) {
  TempDir dir;
  WriteFile(dir.path() / "ham" / "a.txt", std::string(60, 'a'));
  WriteFile(dir.path() / "spam" / "b.txt", std::string(60, 'b'));
  EXPECT_EQ(LoadCorpus(dir.path(), 1000, 119).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(LoadCorpus(dir.path(), 1000, 120).ok());
}

// --- metrics --------------------------------------------------------------------------------

constexpr Calibration kUnit{.a = 1, .b = 0, .threshold = 0};

TEST(ComputeMetrics, HandMadeExample) {
  // ham -2, -1, 0.5 (a false positive); spam 1, 2, 3. Threshold 0.
  const std::vector<double> scores = {-2, -1, 0.5, 1, 2, 3};
  const std::vector<bool> spam = {false, false, false, true, true, true};
  const Metrics m = ComputeMetrics(scores, spam, kUnit, UnsureBand{});
  EXPECT_EQ(m.spam, 3u);
  EXPECT_EQ(m.ham, 3u);
  EXPECT_EQ(m.false_positives, 1u);
  EXPECT_EQ(m.false_negatives, 0u);
  EXPECT_DOUBLE_EQ(m.accuracy, 5.0 / 6);
  EXPECT_DOUBLE_EQ(m.spam_recall, 1.0);
  EXPECT_DOUBLE_EQ(m.ham_recall, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.precision, 3.0 / 4);
  EXPECT_DOUBLE_EQ(m.f1, 2 * 0.75 * 1.0 / 1.75);
  EXPECT_DOUBLE_EQ(m.roc_auc, 1.0);  // every spam scores above every ham
  // p = sigmoid(score): 0.12, 0.27, 0.62, 0.73, 0.88 inside [0.1, 0.9]; 0.95 outside.
  EXPECT_EQ(m.unsure, 5u);
}

TEST(ComputeMetrics, MissedSpamCountsAsFalseNegative) {
  const std::vector<double> scores = {-1, -0.5, 2};
  const std::vector<bool> spam = {false, true, true};
  const Metrics m = ComputeMetrics(scores, spam, kUnit, UnsureBand{});
  EXPECT_EQ(m.false_negatives, 1u);
  EXPECT_EQ(m.false_positives, 0u);
  EXPECT_DOUBLE_EQ(m.spam_recall, 0.5);
  EXPECT_DOUBLE_EQ(m.ham_recall, 1.0);
  EXPECT_DOUBLE_EQ(m.precision, 1.0);
  EXPECT_DOUBLE_EQ(m.f1, 2 * 1.0 * 0.5 / 1.5);
}

TEST(ComputeMetrics, ScoreAtTheThresholdIsSpam) {
  const Calibration c{.a = 1, .b = 0, .threshold = 0.25};
  const std::vector<double> scores = {0.25, 0.2499};
  const std::vector<bool> spam = {true, false};
  const Metrics m = ComputeMetrics(scores, spam, c, UnsureBand{});
  EXPECT_DOUBLE_EQ(m.accuracy, 1.0);
}

TEST(ComputeMetrics, AucCountsPairsInOrder) {
  // ham 0, 2; spam 1, 3: three of the four (spam, ham) pairs are in order.
  const std::vector<double> scores = {0, 2, 1, 3};
  const std::vector<bool> spam = {false, false, true, true};
  EXPECT_DOUBLE_EQ(ComputeMetrics(scores, spam, kUnit, UnsureBand{}).roc_auc, 0.75);
}

TEST(ComputeMetrics, AucOfTiedScoresIsOneHalf) {
  const std::vector<double> scores = {1, 1, 1, 1, 1};
  const std::vector<bool> spam = {false, true, false, true, true};
  EXPECT_DOUBLE_EQ(ComputeMetrics(scores, spam, kUnit, UnsureBand{}).roc_auc, 0.5);
}

TEST(ComputeMetrics, AucOfReversedScoresIsZero) {
  const std::vector<double> scores = {3, 2, -1, -2};
  const std::vector<bool> spam = {false, false, true, true};
  EXPECT_DOUBLE_EQ(ComputeMetrics(scores, spam, kUnit, UnsureBand{}).roc_auc, 0.0);
}

TEST(ComputeMetrics, SpamRecallAtFixedHamRecall) {
  // 200 ham at 0..199. Keeping 99.5 % (199) of ham below the threshold puts it just above
  // 198; keeping 99.9 % (200, rounded up) puts it just above 199.
  std::vector<double> scores;
  std::vector<bool> spam;
  for (int i = 0; i < 200; ++i) {
    scores.push_back(i);
    spam.push_back(false);
  }
  for (double s : {100.0, 198.5, 199.5, 250.0}) {
    scores.push_back(s);
    spam.push_back(true);
  }
  const Metrics m = ComputeMetrics(scores, spam, kUnit, UnsureBand{});
  EXPECT_DOUBLE_EQ(m.spam_recall_at_ham_99_5, 0.75);
  EXPECT_DOUBLE_EQ(m.spam_recall_at_ham_99_9, 0.5);
}

TEST(ComputeMetrics, SeparableScoresCatchAllSpamAtAnyHamRecall) {
  std::vector<double> scores;
  std::vector<bool> spam;
  for (int i = 0; i < 50; ++i) {
    scores.push_back(-1 - i);
    spam.push_back(false);
    scores.push_back(1 + i);
    spam.push_back(true);
  }
  const Metrics m = ComputeMetrics(scores, spam, kUnit, UnsureBand{});
  EXPECT_DOUBLE_EQ(m.roc_auc, 1.0);
  EXPECT_DOUBLE_EQ(m.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m.spam_recall_at_ham_99_5, 1.0);
  EXPECT_DOUBLE_EQ(m.spam_recall_at_ham_99_9, 1.0);
}

TEST(ComputeMetrics, UnsureBandBoundsAreInclusive) {
  const Calibration c{.a = 1, .b = 0, .threshold = 0};
  const std::vector<double> scores = {0, 5};  // p = 0.5, 0.9933
  const std::vector<bool> spam = {true, true};
  EXPECT_EQ(ComputeMetrics(scores, spam, c, {.low = 0.5, .high = 0.5}).unsure, 1u);
  EXPECT_EQ(ComputeMetrics(scores, spam, c, {.low = 0.0, .high = 1.0}).unsure, 2u);
  EXPECT_EQ(ComputeMetrics(scores, spam, c, {.low = 0.6, .high = 0.9}).unsure, 0u);
}

TEST(ComputeMetrics, EmptyInputGivesZeros) {
  const Metrics m = ComputeMetrics({}, {}, kUnit, UnsureBand{});
  EXPECT_EQ(m.spam + m.ham, 0u);
  EXPECT_EQ(m.accuracy, 0);
  EXPECT_EQ(m.f1, 0);
}

TEST(ComputeMetrics, JsonNamesEveryMetric) {
  const std::vector<double> scores = {-1, 1};
  const std::vector<bool> spam = {false, true};
  const nlohmann::json j = ToJson(ComputeMetrics(scores, spam, kUnit, UnsureBand{}));
  for (const char* key :
       {"messages", "spam", "ham", "accuracy", "spam_recall", "ham_recall", "precision", "f1",
        "roc_auc", "spam_recall_at_ham_99_5", "spam_recall_at_ham_99_9", "false_positives",
        "false_negatives", "unsure"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["messages"], 2);
}

// --- examples and evaluation -----------------------------------------------------------------

TEST(MakeExamples, OnePerTextWithItsLabel) {
  const std::vector<LabeledText> texts = SyntheticCorpus(3, 2);
  const std::vector<Example> examples = MakeExamples(texts, {});
  ASSERT_EQ(examples.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(examples[i].spam, texts[i].spam);
    EXPECT_EQ(examples[i].features,
              MakeExample(ParseMessage(texts[i].text), texts[i].spam, {}).features);
  }
}

TEST(Evaluate, SplitWithoutBothClassesIsInvalidArgument) {
  // Every message in the training buckets (3..9) is ham.
  std::vector<LabeledText> corpus;
  for (const char* name : {"0011.1999-12-14.farmer.ham.txt", "0007.1999-12-14.farmer.ham.txt",
                           "0015.1999-12-15.farmer.ham.txt", "0004.1999-12-14.farmer.ham.txt",
                           "0001.1999-12-10.farmer.ham.txt", "0016.1999-12-15.farmer.ham.txt"}) {
    corpus.push_back({name, "Subject: hi\nmeeting report\n", false});
  }
  corpus.push_back({"0009.1999-12-14.farmer.ham.txt", "Subject: buy\ncheap pills\n", true});
  EXPECT_EQ(Evaluate(corpus, {}, {}, 0).status().code(), StatusCode::kInvalidArgument);
}

// The Enron1 corpus, loaded once for every test that needs it.
const std::vector<LabeledText>& Enron() {
  static const auto* const corpus = [] {
    auto loaded = LoadCorpus(EVO_ENRON_DIR);
    return new std::vector<LabeledText>(loaded.ok() ? std::move(loaded).value()
                                                    : std::vector<LabeledText>{});
  }();
  return *corpus;
}

TEST(Enron1, CorpusIsPresent) {
  // Fails, never skips: the accuracy floor below must run in CI.
  auto loaded = LoadCorpus(EVO_ENRON_DIR);
  ASSERT_TRUE(loaded.ok()) << loaded.status() << " (the enron_corpus target unpacks it)";
  size_t spam = 0;
  for (const LabeledText& t : *loaded) {
    spam += t.spam ? 1 : 0;
  }
  EXPECT_EQ(loaded->size(), 5172u);
  EXPECT_EQ(spam, 1500u);
}

TEST(Enron1, FixedSplitSizes) {
  const std::vector<LabeledText>& corpus = Enron();
  ASSERT_FALSE(corpus.empty()) << "Enron1 not found at " << EVO_ENRON_DIR;
  size_t test = 0;
  size_t test_spam = 0;
  for (const LabeledText& t : corpus) {
    if (IsTest(t.name)) {
      ++test;
      test_spam += t.spam ? 1 : 0;
    }
  }
  EXPECT_EQ(test, 1601u);
  EXPECT_EQ(test_spam, 449u);
  EXPECT_EQ(test - test_spam, 1152u);
  EXPECT_EQ(corpus.size() - test, 3571u);
}

// The accuracy floor: fails CI when a change makes the default classifier clearly worse.
// Floors, not the headline numbers (those live in the README and bench/spam.sh).
TEST(Enron1, DefaultClassifierStaysAboveTheAccuracyFloor) {
  const std::vector<LabeledText>& corpus = Enron();
  ASSERT_FALSE(corpus.empty()) << "Enron1 not found at " << EVO_ENRON_DIR;
  auto e = Evaluate(corpus, TrainingOptions{}, UnsureBand{}, /*folds=*/0);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->train_messages, 3571u);
  EXPECT_EQ(e->test.spam + e->test.ham, 1601u);
  EXPECT_EQ(e->test.spam, 449u);
  EXPECT_EQ(e->test.ham, 1152u);
  EXPECT_GE(e->test.accuracy, 0.98);
  EXPECT_GE(e->test.spam_recall, 0.97);
  EXPECT_GE(e->test.ham_recall, 0.97);
  EXPECT_TRUE(e->fold_accuracy.empty());  // folds = 0 skips cross-validation
  RecordProperty("accuracy", std::to_string(e->test.accuracy));
  RecordProperty("spam_recall", std::to_string(e->test.spam_recall));
  RecordProperty("ham_recall", std::to_string(e->test.ham_recall));
}

}  // namespace
}  // namespace evo::spam
