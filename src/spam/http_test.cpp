// The spam routes' scopes, through a real http::Router with an authenticator: training from a
// server directory needs admin, not only the route's spam:write (issue 13).
#include "spam/http.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "spam/test_util.hpp"
#include "store/store.hpp"

namespace evo::spam {
namespace {

using json = nlohmann::json;
using testing::SyntheticCorpus;
using testing::TempDir;

class SpamRouteScopes : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::OpenSqlite({.path = ":memory:"}, clock_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(db).value();
    auto service = Service::Open(*db_, {}, clock_);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(service).value();

    // A corpus in the Enron layout below the corpus root.
    root_ = std::filesystem::canonical(dir_.path());
    corpus_ = root_ / "corpus";
    std::filesystem::create_directories(corpus_ / "ham");
    std::filesystem::create_directories(corpus_ / "spam");
    int n = 0;
    for (const LabeledText& t : SyntheticCorpus(30, 30, 7)) {
      std::ofstream(corpus_ / (t.spam ? "spam" : "ham") / (std::to_string(n++) + ".txt")) << t.text;
    }

    RegisterRoutes(router_, *service_, registry_, {.corpus_root = root_});
    router_.SetAuthenticator([](const http::Request& r) -> StatusOr<auth::Principal> {
      const auto header = r.headers.Get("Authorization");
      auth::Principal p;
      p.kind = auth::Principal::Kind::kApiKey;
      if (header && *header == "Bearer reader") {
        p.scopes = {"spam:read"};
      } else if (header && *header == "Bearer writer") {
        p.scopes = {"spam:write"};
      } else if (header && *header == "Bearer root") {
        p.scopes = {"admin"};
      } else {
        return UnauthenticatedError("the token is not accepted");
      }
      p.subject = "key_" + std::string(header->substr(7));
      return p;
    });
  }

  http::Response Train(const json& body, const std::string& token) {
    http::Request request;
    request.method = "POST";
    request.path = request.target = "/v1/spam/models";
    request.headers.Add("Content-Type", "application/json");
    request.headers.Add("Authorization", "Bearer " + token);
    request.body = body.dump();
    return router_.Dispatch(request);
  }

  static json InlineMessages() {
    json messages = json::array();
    for (const LabeledText& t : SyntheticCorpus(30, 30, 7)) {
      messages.push_back({{"text", t.text}, {"label", t.spam ? "spam" : "ham"}});
    }
    return {{"messages", messages}};
  }

  ManualClock clock_;
  TempDir dir_;
  std::filesystem::path root_;
  std::filesystem::path corpus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<Service> service_;
  metrics::Registry registry_;
  http::Router router_;
};

TEST_F(SpamRouteScopes, DirectoryTrainingWithoutAdminIs403InsufficientScope) {
  const http::Response r = Train({{"directory", corpus_.string()}}, "writer");
  EXPECT_EQ(r.status, 403) << r.body;
  const json problem = json::parse(r.body);
  EXPECT_EQ(problem["reason"], "INSUFFICIENT_SCOPE");
  EXPECT_NE(problem["detail"].get<std::string>().find("'admin'"), std::string::npos) << r.body;
  EXPECT_EQ(service_->active_version(), 0);
}

TEST_F(SpamRouteScopes, TheScopeIsCheckedBeforeThePathIsLookedAt) {
  // A path outside the root and one that does not exist get the same answer: nothing about
  // the server's disk is told to a caller without admin.
  for (const std::string& directory : {std::string("/etc"), (root_ / "missing").string()}) {
    const http::Response r = Train({{"directory", directory}}, "writer");
    EXPECT_EQ(r.status, 403) << directory;
    EXPECT_EQ(json::parse(r.body)["reason"], "INSUFFICIENT_SCOPE") << directory;
  }
}

TEST_F(SpamRouteScopes, AdminTrainsFromADirectory) {
  const http::Response r = Train({{"directory", corpus_.string()}}, "root");
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(service_->active_version(), 1);
}

TEST_F(SpamRouteScopes, InlineTrainingNeedsSpamWriteOnly) {
  EXPECT_EQ(Train(InlineMessages(), "reader").status, 403);
  const http::Response r = Train(InlineMessages(), "writer");
  EXPECT_EQ(r.status, 201) << r.body;
}

}  // namespace
}  // namespace evo::spam
