#include "spam/spam.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "spam/test_util.hpp"
#include "store/store.hpp"

namespace evo::spam {
namespace {

using testing::HamProbes;
using testing::SpamProbes;
using testing::SyntheticCorpus;
using testing::TempDir;

using namespace std::string_literals;

std::string Reason(const Status& s) { return s.GetPayload(kPayloadReason).value_or("(none)"); }

TrainRequest Request(std::optional<Family> family = std::nullopt, bool activate = false,
                     uint64_t seed = 7) {
  TrainRequest r;
  r.messages = SyntheticCorpus(30, 30, seed);
  r.family = family;
  r.activate = activate;
  return r;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::OpenSqlite({.path = ":memory:"}, clock_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(db).value();
    Reopen();
  }

  void Reopen(const ServiceOptions& options = {}) {
    service_.reset();
    auto s = Service::Open(*db_, options, clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    service_ = std::move(s).value();
  }

  ModelInfo MustTrain(const TrainRequest& request) {
    auto info = service_->Train(request);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : ModelInfo{};
  }

  double Probability(const std::string& text) {
    auto c = service_->Classify(text);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->probability : -1;
  }

  ManualClock clock_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, WithoutAModelClassifyIsFailedPreconditionNoModel) {
  EXPECT_EQ(service_->active_version(), 0);
  auto c = service_->Classify("Subject: hi\nhello there\n");
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(c.status()), "NO_MODEL");
  auto batch = service_->ClassifyBatch({{"hello there", ""}});
  EXPECT_EQ(batch.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(batch.status()), "NO_MODEL");
  auto feedback = service_->Feedback("hello there", "", true, false);
  EXPECT_EQ(feedback.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(feedback.status()), "NO_MODEL");
  auto list = service_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->empty());
}

TEST_F(ServiceTest, FirstTrainingActivatesVersionOne) {
  const ModelInfo info = MustTrain(Request());
  EXPECT_EQ(info.version, 1);
  EXPECT_TRUE(info.active);
  EXPECT_EQ(service_->active_version(), 1);
  auto c = service_->Classify(SpamProbes()[0]);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, 1);
  EXPECT_TRUE(c->spam);
  EXPECT_GT(c->probability, 0.5);
  auto h = service_->Classify(HamProbes()[0]);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_FALSE(h->spam);
  EXPECT_LT(h->probability, 0.5);
}

TEST_F(ServiceTest, ClassifyExplainsWithTopTokensSpamSideFirst) {
  MustTrain(Request());
  auto c = service_->Classify("Subject: cheap meeting\nviagra pills with the project report\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_FALSE(c->top_tokens.empty());
  EXPECT_LE(c->top_tokens.size(), 10u);  // top_tokens = 5 per side
  bool ham_side = false;
  for (const TokenWeight& t : c->top_tokens) {
    ham_side = ham_side || t.weight < 0;
    if (ham_side) {
      EXPECT_LT(t.weight, 0) << t.token;
    }
  }
}

TEST_F(ServiceTest, PlainTextSubjectArgumentIsUsed) {
  MustTrain(Request(Family::kNaiveBayes));
  auto without = service_->Classify("the and for");
  auto with = service_->Classify("the and for", "cheap viagra pills");
  ASSERT_TRUE(without.ok());
  ASSERT_TRUE(with.ok());
  EXPECT_GT(with->probability, without->probability);
}

TEST_F(ServiceTest, ClassifyBatchAnswersEachWithOneVersion) {
  MustTrain(Request());
  auto batch = service_->ClassifyBatch(
      {{SpamProbes()[0], ""}, {HamProbes()[0], ""}, {"the and for", "cheap viagra"}});
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 3u);
  for (const auto& c : *batch) {
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->version, 1);
  }
  EXPECT_TRUE((*batch)[0]->spam);
  EXPECT_FALSE((*batch)[1]->spam);
}

TEST_F(ServiceTest, ClassifyBatchAnswersABadMessageInItsSlotAndTheOthers) {
  MustTrain(Request());
  auto batch =
      service_->ClassifyBatch({{"fine text", ""}, {"", ""}, {"nul\0bytes"s, ""}, {" \n", ""}});
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), 4u);
  EXPECT_TRUE((*batch)[0].ok());
  EXPECT_TRUE((*batch)[2].ok()) << (*batch)[2].status();  // NUL bytes are data
  for (size_t i : {1, 3}) {
    const Status& s = (*batch)[i].status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(Reason(s), "EMPTY_TEXT");
    EXPECT_EQ(s.GetPayload(kPayloadPointer), "#/messages/" + std::to_string(i) + "/text");
  }
}

TEST_F(ServiceTest, SecondTrainingWithoutActivateKeepsVersionOneActive) {
  MustTrain(Request());
  const ModelInfo second = MustTrain(Request(std::nullopt, /*activate=*/false, /*seed=*/8));
  EXPECT_EQ(second.version, 2);
  EXPECT_FALSE(second.active);
  EXPECT_EQ(service_->active_version(), 1);
  auto c = service_->Classify(SpamProbes()[0]);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->version, 1);
}

TEST_F(ServiceTest, SecondTrainingWithActivateSwitchesToVersionTwo) {
  MustTrain(Request());
  const ModelInfo second = MustTrain(Request(std::nullopt, /*activate=*/true, /*seed=*/8));
  EXPECT_EQ(second.version, 2);
  EXPECT_TRUE(second.active);
  EXPECT_EQ(service_->active_version(), 2);
  auto c = service_->Classify(SpamProbes()[0]);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->version, 2);
}

TEST_F(ServiceTest, ActivateRollsBackToAnEarlierVersion) {
  MustTrain(Request(Family::kLinear));
  MustTrain(Request(Family::kNaiveBayes, /*activate=*/true));
  ASSERT_EQ(service_->active_version(), 2);
  ASSERT_TRUE(service_->Activate(1).ok());
  EXPECT_EQ(service_->active_version(), 1);
  auto c = service_->Classify(SpamProbes()[0]);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, 1);
  auto one = service_->Get(1);
  auto two = service_->Get(2);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE(one->active);
  EXPECT_FALSE(two->active);
}

TEST_F(ServiceTest, ActivatingAnUnknownVersionIsNotFoundAndChangesNothing) {
  MustTrain(Request());
  const Status s = service_->Activate(99);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(Reason(s), "UNKNOWN_VERSION");
  EXPECT_EQ(service_->active_version(), 1);
  EXPECT_EQ(service_->Get(99).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Activate(0).code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Activate(-1).code(), StatusCode::kNotFound);
}

TEST_F(ServiceTest, ListAndGetShowMetricsAndActiveFlags) {
  MustTrain(Request(Family::kLinear));
  clock_.Advance(std::chrono::seconds(90));
  MustTrain(Request(Family::kNaiveBayes, /*activate=*/false, /*seed=*/8));
  auto list = service_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  const ModelInfo& one = (*list)[0];
  const ModelInfo& two = (*list)[1];
  EXPECT_EQ(one.version, 1);
  EXPECT_EQ(two.version, 2);
  EXPECT_TRUE(one.active);
  EXPECT_FALSE(two.active);
  EXPECT_EQ(one.family, "linear");
  EXPECT_EQ(two.family, "nb");
  EXPECT_EQ(one.created_at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(two.created_at, "2026-01-01T00:01:30.000Z");
  for (const ModelInfo& m : *list) {
    EXPECT_EQ(m.messages, 60);
    EXPECT_EQ(m.spam, 30);
    EXPECT_EQ(m.ham, 30);
    EXPECT_GT(m.features, 0);
    EXPECT_EQ(m.feedback, 0);
    EXPECT_GT(m.threshold, 0);
    EXPECT_LT(m.threshold, 1);
    EXPECT_GE(m.train_seconds, 0);
    ASSERT_TRUE(m.metrics.is_object()) << m.metrics.dump();
    ASSERT_TRUE(m.metrics.contains("crossValidation")) << m.metrics.dump();
    const nlohmann::json& cv = m.metrics["crossValidation"];
    EXPECT_EQ(cv["messages"], 60);
    EXPECT_GE(cv["accuracy"].get<double>(), 0.9) << cv.dump();
    EXPECT_EQ(m.metrics["folds"], 5);
    EXPECT_FALSE(m.metrics.contains("threshold"));  // lifted into ModelInfo::threshold
    const nlohmann::json j = ToJson(m);
    EXPECT_EQ(j["version"], m.version);
    EXPECT_EQ(j["active"], m.active);
  }
  auto got = service_->Get(2);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->family, "nb");
  EXPECT_EQ(got->metrics, two.metrics);
  EXPECT_FALSE(got->active);
}

TEST_F(ServiceTest, TrainingWithTooFewMessagesIsInvalidArgument) {
  TrainRequest r;
  r.messages = SyntheticCorpus(4, 30);
  auto info = service_->Train(r);
  EXPECT_EQ(info.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->active_version(), 0);
  auto list = service_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(ServiceTest, TrainingWithABadInlineMessageIsInvalidArgument) {
  TrainRequest r = Request();
  r.messages[3].text = " \n\t";
  auto info = service_->Train(r);
  EXPECT_EQ(info.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(info.status()), "EMPTY_TEXT");
  EXPECT_EQ(info.status().GetPayload(kPayloadPointer), "#/messages/3/text");
  EXPECT_EQ(service_->active_version(), 0);
}

// --- CheckText --------------------------------------------------------------------------------

TEST_F(ServiceTest, CheckTextRejectsEmptyText) {
  const Status s = service_->CheckText("");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(s), "EMPTY_TEXT");
}

TEST_F(ServiceTest, CheckTextRejectsWhitespaceOnlyText) {
  for (const char* text : {" ", "\n\n", " \t\r\n\f "}) {
    const Status s = service_->CheckText(text);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(Reason(s), "EMPTY_TEXT");
  }
}

TEST_F(ServiceTest, CheckTextAcceptsNulBytesAndControlCharacters) {
  // A spam filter classifies what arrives: binary parts are data.
  EXPECT_TRUE(service_->CheckText(std::string("Subject: x\nhello\0world", 22)).ok());
  EXPECT_TRUE(service_->CheckText(std::string(5, '\0')).ok());
  std::string text = "abc";
  for (int i = 0; i < 10; ++i) {
    text += "\x01\x02\x1b\x7f";
  }
  EXPECT_TRUE(service_->CheckText(text).ok());
}

TEST_F(ServiceTest, CheckTextAcceptsOrdinaryText) {
  EXPECT_TRUE(service_->CheckText("hello").ok());
  EXPECT_TRUE(service_->CheckText("Subject: x\r\n\r\nline\tone\fpage\n").ok());
  EXPECT_TRUE(service_->CheckText("caf\xC3\xA9 costs 5 \xE2\x82\xAC").ok());
  // A few stray control characters (an ESC in a long text) are not binary content.
  EXPECT_TRUE(service_->CheckText(std::string(100, 'a') + "\x1b").ok());
}

TEST_F(ServiceTest, CheckTextRejectsTextOverTheSizeLimit) {
  ServiceOptions options;
  options.max_text_bytes = 100;
  Reopen(options);
  EXPECT_TRUE(service_->CheckText(std::string(100, 'a')).ok());
  const Status s = service_->CheckText(std::string(101, 'a'));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(s), "TEXT_TOO_LARGE");
}

TEST_F(ServiceTest, ClassifyChecksTheTextFirst) {
  for (const std::string& bad : {std::string(), std::string("  \n")}) {
    EXPECT_EQ(service_->Classify(bad).status().code(), StatusCode::kInvalidArgument);
  }
  MustTrain(Request());
  EXPECT_EQ(Reason(service_->Classify("").status()), "EMPTY_TEXT");
  auto nul = service_->Classify("Subject: cheap viagra\n\nbuy\0now"s);
  ASSERT_TRUE(nul.ok()) << nul.status();
  EXPECT_EQ(nul->version, 1);
}

TEST_F(ServiceTest, FilesWithNulBytesAreTrainedOnAndEmptyOnesSkipped) {
  TrainRequest r = Request();
  r.messages.push_back({"nul.txt", "Subject: cheap\n\nbuy\0now"s, true});
  r.messages.push_back({"empty.txt", "", false});
  const ModelInfo info = MustTrain(r);
  EXPECT_EQ(info.messages, 61);
  EXPECT_EQ(info.metrics["skipped"]["count"], 1);
}

TEST_F(ServiceTest, FeedbackWithNulBytesIsStoredAndReplayed) {
  MustTrain(Request(Family::kNaiveBayes));
  const std::string text = "Subject: zorblax\n\nzorblax\0offer"s;
  const double before = Probability(text);
  ASSERT_TRUE(service_->Feedback(text, "", /*spam=*/true, /*unlearn=*/false).ok());
  const double learned = Probability(text);
  EXPECT_GT(learned, before);
  Reopen();  // replayed from the store, NUL byte included
  EXPECT_DOUBLE_EQ(Probability(text), learned);
}

TEST_F(ServiceTest, ASubjectGivenApartIsNormalisedLikeAParsedOne) {
  MustTrain(Request());
  // "caf\xE9" as raw bytes, and as a JSON client sends it (U+00E9), and decomposed.
  auto a = service_->Classify("hello there", "caf\xE9 deal");
  auto b = service_->Classify("hello there", "caf\xC3\xA9 deal");
  auto c = service_->Classify("hello there", "cafe\xCC\x81 deal");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->probability, b->probability);
  EXPECT_EQ(a->probability, c->probability);
}

TEST(ServiceOptions, BadOptionsAreInvalidArgument) {
  EXPECT_TRUE(Validate(ServiceOptions{}).ok());
  std::vector<ServiceOptions> bad(5);
  bad[0].unsure = {.low = 0.9, .high = 0.1};
  bad[1].top_tokens = 51;
  bad[2].calibration_folds = 1;
  bad[3].calibration_folds = 21;
  bad[4].max_text_bytes = 0;
  ManualClock clock;
  auto db = store::OpenSqlite({.path = ":memory:"}, clock);
  ASSERT_TRUE(db.ok());
  for (const ServiceOptions& o : bad) {
    EXPECT_EQ(Validate(o).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(Service::Open(**db, o, clock).status().code(), StatusCode::kInvalidArgument);
  }
}

// --- feedback -------------------------------------------------------------------------------

TEST_F(ServiceTest, NaiveBayesFeedbackMovesTheProbabilityAndUnlearnRestoresItExactly) {
  MustTrain(Request(Family::kNaiveBayes));
  const std::string text = HamProbes()[0];
  const double before = Probability(text);
  auto learned = service_->Feedback(text, "", /*spam=*/true, /*unlearn=*/false);
  ASSERT_TRUE(learned.ok()) << learned.status();
  EXPECT_EQ(*learned, 1);
  const double after_learn = Probability(text);
  EXPECT_GT(after_learn, before);
  auto unlearned = service_->Feedback(text, "", true, /*unlearn=*/true);
  ASSERT_TRUE(unlearned.ok()) << unlearned.status();
  EXPECT_EQ(Probability(text), before);  // exactly: integer counts
  auto info = service_->Get(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->feedback, 2);
}

TEST_F(ServiceTest, FeedbackWithASubjectLearnsTheSubject) {
  MustTrain(Request(Family::kNaiveBayes));
  const double before = Probability("Subject: quarterly figures\nthe and for\n");
  ASSERT_TRUE(service_->Feedback("the and for", "quarterly figures", true, false).ok());
  EXPECT_GT(Probability("Subject: quarterly figures\nthe and for\n"), before);
}

TEST_F(ServiceTest, UnlearningWhatWasNotLearnedIsFailedPreconditionNotLearned) {
  MustTrain(Request(Family::kNaiveBayes));
  const std::string text = "Subject: zebra\nquixotic xylophone never seen before\n";
  const double before = Probability(text);
  auto s = service_->Feedback(text, "", true, /*unlearn=*/true);
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(s.status()), "NOT_LEARNED");
  EXPECT_EQ(Probability(text), before);
  auto info = service_->Get(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->feedback, 0);  // nothing recorded
}

TEST_F(ServiceTest, FeedbackToALinearModelIsFailedPreconditionModelNotIncremental) {
  MustTrain(Request(Family::kLinear));
  auto s = service_->Feedback(SpamProbes()[0], "", true, false);
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(s.status()), "MODEL_NOT_INCREMENTAL");
}

TEST_F(ServiceTest, FeedbackChecksTheText) {
  MustTrain(Request(Family::kNaiveBayes));
  auto s = service_->Feedback("", "", true, false);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Reason(s.status()), "EMPTY_TEXT");
}

TEST_F(ServiceTest, FeedbackBelongsToTheVersionItWasGivenTo) {
  MustTrain(Request(Family::kNaiveBayes));
  const std::string text = HamProbes()[1];
  const double v1_before = Probability(text);
  ASSERT_TRUE(service_->Feedback(text, "", true, false).ok());
  const double v1_after = Probability(text);
  ASSERT_NE(v1_after, v1_before);
  // Version 2 has none of version 1's feedback; rolling back to 1 replays it.
  MustTrain(Request(Family::kNaiveBayes, /*activate=*/true));
  const double v2 = Probability(text);
  EXPECT_EQ(v2, v1_before);  // same training messages, no feedback
  ASSERT_TRUE(service_->Activate(1).ok());
  EXPECT_EQ(Probability(text), v1_after);
}

// A second Service on the same database file: a restart, or another instance.
TEST(ServiceRestart, ActiveVersionAndFeedbackSurviveARestart) {
  TempDir dir;
  const std::string path = (dir.path() / "spam.db").string();
  ManualClock clock;
  const std::string text = HamProbes()[0];
  double trained = 0;
  double after_feedback = 0;
  {
    auto db = store::OpenSqlite({.path = path}, clock);
    ASSERT_TRUE(db.ok()) << db.status();
    auto service = Service::Open(**db, {}, clock);
    ASSERT_TRUE(service.ok()) << service.status();
    TrainRequest r = Request(Family::kNaiveBayes);
    ASSERT_TRUE((*service)->Train(r).ok());
    trained = (*service)->Classify(text)->probability;
    ASSERT_TRUE((*service)->Feedback(text, "", true, false).ok());
    ASSERT_TRUE((*service)->Feedback(SpamProbes()[0], "", false, false).ok());
    after_feedback = (*service)->Classify(text)->probability;
    ASSERT_NE(after_feedback, trained);
  }
  auto db = store::OpenSqlite({.path = path}, clock);
  ASSERT_TRUE(db.ok()) << db.status();
  auto service = Service::Open(**db, {}, clock);
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ((*service)->active_version(), 1);
  auto c = (*service)->Classify(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, 1);
  EXPECT_EQ(c->probability, after_feedback);  // replayed exactly
  auto info = (*service)->Get(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->feedback, 2);
}

TEST(ServiceRestart, SecondInstanceSeesChangesAfterRefresh) {
  TempDir dir;
  const std::string path = (dir.path() / "spam.db").string();
  ManualClock clock;
  auto db_a = store::OpenSqlite({.path = path}, clock);
  auto db_b = store::OpenSqlite({.path = path}, clock);
  ASSERT_TRUE(db_a.ok()) << db_a.status();
  ASSERT_TRUE(db_b.ok()) << db_b.status();
  auto a = Service::Open(**db_a, {}, clock);
  auto b = Service::Open(**db_b, {}, clock);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  Service& first = **a;
  Service& second = **b;
  const std::string text = HamProbes()[2];

  ASSERT_TRUE(first.Train(Request(Family::kNaiveBayes)).ok());
  EXPECT_EQ(second.active_version(), 0);
  ASSERT_TRUE(second.Refresh().ok());
  EXPECT_EQ(second.active_version(), 1);
  EXPECT_EQ(second.Classify(text)->probability, first.Classify(text)->probability);

  // Feedback given to one instance reaches the other.
  ASSERT_TRUE(first.Feedback(text, "", true, false).ok());
  const double learned = first.Classify(text)->probability;
  EXPECT_NE(second.Classify(text)->probability, learned);
  ASSERT_TRUE(second.Refresh().ok());
  EXPECT_EQ(second.Classify(text)->probability, learned);
  ASSERT_TRUE(second.Refresh().ok());  // idempotent: not applied twice
  EXPECT_EQ(second.Classify(text)->probability, learned);

  // ... both ways, in the store's order.
  ASSERT_TRUE(second.Feedback(text, "", true, true).ok());
  const double unlearned = second.Classify(text)->probability;
  ASSERT_TRUE(first.Refresh().ok());
  EXPECT_EQ(first.Classify(text)->probability, unlearned);

  // Activation in one instance reaches the other.
  ASSERT_TRUE(first.Train(Request(Family::kLinear, /*activate=*/true)).ok());
  EXPECT_EQ(second.active_version(), 1);
  ASSERT_TRUE(second.Refresh().ok());
  EXPECT_EQ(second.active_version(), 2);
  ASSERT_TRUE(second.Activate(1).ok());
  ASSERT_TRUE(first.Refresh().ok());
  EXPECT_EQ(first.active_version(), 1);
  EXPECT_EQ(first.Classify(text)->probability, unlearned);
}

// Two instances take feedback at the same time: each must end up with every row of the
// store, as a fresh instance replays them.
TEST(ServiceRestart, ConcurrentFeedbackToTwoInstancesReachesBoth) {
  TempDir dir;
  const std::string path = (dir.path() / "spam.db").string();
  ManualClock clock;
  auto db_a = store::OpenSqlite({.path = path}, clock);
  auto db_b = store::OpenSqlite({.path = path}, clock);
  ASSERT_TRUE(db_a.ok());
  ASSERT_TRUE(db_b.ok());
  auto a = Service::Open(**db_a, {}, clock);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Train(Request(Family::kNaiveBayes)).ok());
  auto b = Service::Open(**db_b, {}, clock);
  ASSERT_TRUE(b.ok());
  std::atomic<int> failures{0};
  auto run = [&](Service& s, const std::string& prefix) {
    for (int i = 0; i < 300; ++i) {
      failures +=
          s.Feedback(prefix + " word" + std::to_string(i), "", i % 2 == 0, false).ok() ? 0 : 1;
    }
  };
  std::thread ta([&] { run(**a, "alpha"); });
  std::thread tb([&] { run(**b, "beta"); });
  ta.join();
  tb.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE((*a)->Refresh().ok());
  ASSERT_TRUE((*b)->Refresh().ok());
  auto db_c = store::OpenSqlite({.path = path}, clock);
  ASSERT_TRUE(db_c.ok());
  auto c = Service::Open(**db_c, {}, clock);
  ASSERT_TRUE(c.ok());
  for (const std::string& p : testing::AllProbes()) {
    const double pc = (*c)->Classify(p)->probability;
    EXPECT_EQ((*a)->Classify(p)->probability, pc) << p;
    EXPECT_EQ((*b)->Classify(p)->probability, pc) << p;
  }
  EXPECT_EQ((*c)->Get(1)->feedback, 600);
}

TEST(ServiceConcurrency, ClassifyKeepsAnsweringWhileATrainingRuns) {
  ManualClock clock;
  auto db = store::OpenSqlite({.path = ":memory:"}, clock);
  ASSERT_TRUE(db.ok());
  auto opened = Service::Open(**db, {}, clock);
  ASSERT_TRUE(opened.ok());
  Service& service = **opened;
  ASSERT_TRUE(service.Train(Request(Family::kNaiveBayes)).ok());

  std::atomic<bool> training_done{false};
  std::atomic<int> failures{0};
  std::atomic<int> answered{0};
  std::atomic<int> bad_version{0};
  std::vector<std::thread> readers;
  readers.reserve(4);
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      int mine = 0;
      // Keep going until training is over, and at least a few rounds each.
      while (!training_done.load() || mine < 50) {
        const std::string& text =
            (mine + t) % 2 == 0 ? SpamProbes()[mine % 3] : HamProbes()[mine % 3];
        auto c = service.Classify(text);
        if (!c.ok()) {
          failures.fetch_add(1);
        } else if (c->version != 1 && c->version != 2) {
          bad_version.fetch_add(1);
        }
        ++mine;
        answered.fetch_add(1);
      }
    });
  }
  std::thread trainer([&] {
    TrainRequest bigger = Request(Family::kLinear, /*activate=*/true);
    bigger.messages = SyntheticCorpus(300, 300, /*seed=*/11);
    auto info = service.Train(bigger);
    if (!info.ok()) {
      failures.fetch_add(1000);
    }
    training_done.store(true);
  });
  trainer.join();
  for (std::thread& r : readers) {
    r.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad_version.load(), 0);
  EXPECT_GE(answered.load(), 200);
  EXPECT_EQ(service.active_version(), 2);
  auto c = service.Classify(SpamProbes()[0]);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->version, 2);
}

TEST(ServiceConcurrency, FeedbackAndClassifyFromSeveralThreads) {
  ManualClock clock;
  auto db = store::OpenSqlite({.path = ":memory:"}, clock);
  ASSERT_TRUE(db.ok());
  auto opened = Service::Open(**db, {}, clock);
  ASSERT_TRUE(opened.ok());
  Service& service = **opened;
  ASSERT_TRUE(service.Train(Request(Family::kNaiveBayes)).ok());
  const double before = service.Classify(HamProbes()[0])->probability;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if (t % 2 == 0) {
          // Learn and take back: the net effect is nothing.
          failures += service.Feedback(HamProbes()[0], "", true, false).ok() ? 0 : 1;
          failures += service.Feedback(HamProbes()[0], "", true, true).ok() ? 0 : 1;
        } else {
          failures += service.Classify(SpamProbes()[i % 3]).ok() ? 0 : 1;
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(service.Classify(HamProbes()[0])->probability, before);
  auto info = service.Get(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->feedback, 80);
}

}  // namespace
}  // namespace evo::spam
