// The webhook service end to end inside one process: a real queue broker and store on a temp
// dir, real HTTP deliveries to `evo webhooks listen`'s receiver on loopback.
#include "webhooks/webhooks.hpp"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "core/clock.hpp"
#include "core/temp_dir.hpp"
#include "webhooks/internal.hpp"
#include "webhooks/listen.hpp"
#include "webhooks/signature.hpp"

namespace evo::webhooks {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class WebhooksTest : public ::testing::Test {
 protected:
  WebhooksTest() {
    queue::BrokerOptions bo;
    bo.path = dir_.File("queue.db");
    bo.sync = false;
    ids_ = [this](size_t n) {
      std::vector<queue::MessageId> out;
      for (size_t i = 0; i < n; ++i) {
        out.push_back(next_id_.fetch_add(1));
      }
      return StatusOr<std::vector<queue::MessageId>>(out);
    };
    broker_ = queue::OpenSqliteBroker(bo, RealClock(), ids_).value();
    db_ = store::OpenSqlite({.path = dir_.File("evo.db")}).value();
    options_.retry_schedule = {milliseconds(50), milliseconds(50), milliseconds(50)};
    options_.retry_jitter = 0;
    options_.request_timeout = milliseconds(2000);
    options_.ssrf.allow.push_back(outbound::ParseCidr("127.0.0.1/32").value());
  }
  ~WebhooksTest() override {
    if (service_) {
      service_->Stop();
    }
    for (auto& l : listeners_) {
      l->Stop();
    }
  }

  void Open() { service_ = Service::Open(options_, *db_, *broker_, ids_, *clock_).value(); }

  // Stops the service while time moves on the manual clock (a long poll of the fan-out on a
  // broker with that clock ends only when it does).
  void StopTicking() {
    std::atomic<bool> done{false};
    std::thread ticker([&] {
      while (!done.load()) {
        manual_.Advance(milliseconds(100));
        std::this_thread::sleep_for(milliseconds(5));
      }
    });
    service_->Stop();
    service_.reset();
    done = true;
    ticker.join();
  }

  int64_t Count(const std::string& sql, const store::Params& params = {}) {
    auto row = db_->QueryOne(sql, params);
    return row.ok() ? std::get<int64_t>((*row)[0]) : -1;
  }

  Listener& Receiver(ListenOptions o = {}) {
    o.listen = "127.0.0.1:0";
    o.print = false;
    listeners_.push_back(Listener::Start(o).value());
    return *listeners_.back();
  }

  static json Stats(Listener& l) { return json::parse(l.StatsJson()); }

  static std::string Url(Listener& l, std::string_view path = "/hook") {
    return "http://127.0.0.1:" + std::to_string(l.port()) + std::string(path);
  }

  StatusOr<Service::Created> Create(Endpoint ep, bool verify = false) {
    std::promise<StatusOr<Service::Created>> p;
    service_->CreateEndpoint(std::move(ep), verify,
                             [&](StatusOr<Service::Created> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }

  StatusOr<std::string> Publish(const std::string& type, json payload, std::string id = "") {
    std::promise<StatusOr<std::string>> p;
    service_->Publish("", type, std::move(payload), std::move(id),
                      [&](StatusOr<std::string> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }

  static bool Eventually(const std::function<bool()>& done, int seconds = 10) {
    for (int i = 0; i < seconds * 100; ++i) {
      if (done()) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return done();
  }

  evo::testing::TempDir dir_;
  ManualClock manual_;
  const Clock* clock_ = &RealClock();
  std::atomic<uint64_t> next_id_{1000};
  queue::IdSource ids_;
  std::unique_ptr<queue::Broker> broker_;
  std::unique_ptr<store::Database> db_;
  Options options_;
  std::unique_ptr<Service> service_;
  std::vector<std::unique_ptr<Listener>> listeners_;
};

TEST_F(WebhooksTest, PublishedEventsReachMatchingEndpointsSigned) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "order.created"}).ok());
  ASSERT_TRUE(service_->CreateEventType({.name = "order.paid"}).ok());
  Endpoint ep;
  ep.url = "placeholder";
  auto created = Create({});
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);  // no URL

  const std::string secret = GenerateSecret();
  Listener& rx = Receiver({.secrets = {secret}});
  Listener& other = Receiver();
  Endpoint orders;
  orders.url = Url(rx);
  orders.secret = secret;
  orders.event_types = {"order.created"};
  ASSERT_TRUE(Create(orders).ok());
  Endpoint paid;
  paid.url = Url(other);
  paid.event_types = {"order.paid"};
  paid.filter = {{"/amount", {{"$gte", 100}}}};
  ASSERT_TRUE(Create(paid).ok());

  auto id = Publish("order.created", {{"order", 1}});
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(Publish("order.paid", {{"amount", 50}}).ok());   // filtered out
  ASSERT_TRUE(Publish("order.paid", {{"amount", 500}}).ok());  // delivered
  ASSERT_TRUE(
      Eventually([&] { return Stats(rx)["distinct"] == 1 && Stats(other)["distinct"] == 1; }));
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(Stats(rx)["badSignatures"], 0);
  EXPECT_EQ(Stats(other)["received"], 1);
  ASSERT_TRUE(Eventually([&] { return service_->GetMessage(*id).ok(); }));
  EXPECT_EQ(service_->GetMessage(*id)->payload, json({{"order", 1}}));
  ASSERT_TRUE(Eventually([&] {
    auto a = service_->ListAttempts("", *id, {});
    return a.ok() && a->size() == 1 && (*a)[0].outcome == "succeeded";
  }));
}

TEST_F(WebhooksTest, UnknownTypeAndSchemaViolationsAreRefused) {
  Open();
  EventType t;
  t.name = "user.signup";
  t.schema = {{"type", "object"},
              {"required", {"email"}},
              {"properties", {{"email", {{"type", "string"}}}}}};
  ASSERT_TRUE(service_->CreateEventType(t).ok());
  auto unknown = Publish("nope", json::object());
  EXPECT_EQ(unknown.status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
  auto bad = Publish("user.signup", {{"email", 5}});
  EXPECT_EQ(bad.status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
  EXPECT_EQ(bad.status().GetPayload(kPayloadPointer).value_or(""), "#/payload/email");
  EXPECT_TRUE(Publish("user.signup", {{"email", "a@b.c"}}).ok());
  EXPECT_EQ(service_->CreateEventType({.name = "user.signup"}).status().code(),
            StatusCode::kAlreadyExists);
  EventType broken;
  broken.name = "x";
  broken.schema = {{"type", 12}};
  EXPECT_EQ(service_->CreateEventType(broken).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(WebhooksTest, IdempotentPublishAnswersTheFirstId) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  auto first = Publish("e", 1, "evt-1");
  ASSERT_TRUE(first.ok());
  std::vector<std::thread> threads;
  threads.reserve(50);
  std::vector<std::string> ids(50);
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] { ids[i] = Publish("e", 1, "evt-1").value_or("?"); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& id : ids) {
    EXPECT_EQ(id, *first);
  }
  EXPECT_NE(*Publish("e", 1, "evt-2"), *first);
  auto reused = Publish("e", 2, "evt-1");  // same key, another body
  EXPECT_EQ(reused.status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
  // After a restart the key is found in the stored messages.
  ASSERT_TRUE(Eventually([&] { return service_->GetMessage(*first).ok(); }));
  service_->Stop();
  service_.reset();
  Open();
  EXPECT_EQ(*Publish("e", 1, "evt-1"), *first);
  EXPECT_EQ(Publish("e", 3, "evt-1").status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
}

TEST_F(WebhooksTest, AnEndpointFailingTooLongIsDisabled) {
  options_.disable_after = milliseconds(300);
  options_.retry_schedule = {milliseconds(100), milliseconds(100), milliseconds(100),
                             milliseconds(100), milliseconds(100), milliseconds(100)};
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& down = Receiver({.status = 503});
  Endpoint ep;
  ep.url = Url(down);
  auto created = Create(ep).value().endpoint;
  ASSERT_TRUE(Publish("e", 1).ok());
  ASSERT_TRUE(Eventually(
      [&] { return service_->GetEndpoint(created.id)->state == EndpointState::kDisabled; }));
  EXPECT_NE(service_->GetEndpoint(created.id)->disabled_reason.find("failing"), std::string::npos);
}

TEST_F(WebhooksTest, TransientFailuresAreRetriedPermanentOnesRecoverable) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& flaky = Receiver({.fail_first = 2});
  Endpoint ep;
  ep.url = Url(flaky);
  auto created = Create(ep);
  ASSERT_TRUE(created.ok());
  auto id = Publish("e", {{"n", 1}});
  ASSERT_TRUE(Eventually([&] { return Stats(flaky)["distinct"] == 1; }));
  EXPECT_EQ(Stats(flaky)["failed"], 2);
  ASSERT_TRUE(Eventually([&] {
    auto a = service_->ListAttempts(created->endpoint.id, "", {});
    return a.ok() && a->size() == 3;
  }));
  auto attempts = service_->ListAttempts(created->endpoint.id, "", {}).value();
  EXPECT_EQ(attempts[0].outcome, "retrying");
  EXPECT_EQ(attempts[0].response_status, 500);
  EXPECT_EQ(attempts[2].outcome, "succeeded");

  // A 400 is not retried; once the receiver is fixed, recover delivers it.
  Listener& strict = Receiver({.status = 400});
  Endpoint ep2;
  ep2.url = Url(strict);
  auto e2 = Create(ep2).value().endpoint;
  const int64_t before = UnixMillis(RealClock().Now());
  auto id2 = Publish("e", {{"n", 2}});
  ASSERT_TRUE(Eventually([&] {
    auto a = service_->ListAttempts(e2.id, "", {});
    return a.ok() && a->size() == 1 && (*a)[0].outcome == "failed";
  }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(Stats(strict)["received"], 1);
  Listener& fixed = Receiver();
  e2.url = Url(fixed);
  ASSERT_TRUE(service_->UpdateEndpoint(e2).ok());
  auto recovered = service_->Recover(e2.id, before);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, 1);
  ASSERT_TRUE(Eventually([&] { return Stats(fixed)["distinct"] == 1; }));
}

TEST_F(WebhooksTest, GoneDisablesTheEndpointAndEmitsEndpointDisabled) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& gone = Receiver({.status = 410});
  Listener& ops = Receiver();
  Endpoint ep;
  ep.url = Url(gone);
  ep.event_types = {"e"};
  auto created = Create(ep).value().endpoint;
  Endpoint watcher;
  watcher.url = Url(ops);
  watcher.event_types = {"endpoint.disabled"};
  ASSERT_TRUE(Create(watcher).ok());
  ASSERT_TRUE(Publish("e", 1).ok());
  ASSERT_TRUE(Eventually(
      [&] { return service_->GetEndpoint(created.id)->state == EndpointState::kDisabled; }));
  EXPECT_NE(service_->GetEndpoint(created.id)->disabled_reason.find("410"), std::string::npos);
  ASSERT_TRUE(Eventually([&] { return Stats(ops)["distinct"] == 1; }));
  // Later events are kept for recovery, not sent.
  ASSERT_TRUE(Publish("e", 2).ok());
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(Stats(gone)["received"], 1);
}

TEST_F(WebhooksTest, OrderedEndpointGetsMessagesStrictlyInOrder) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& rx = Receiver({.fail_first = 2});
  Endpoint ep;
  ep.url = Url(rx);
  ep.ordered = true;
  auto created = Create(ep).value().endpoint;
  std::vector<std::string> ids;
  ids.reserve(5);
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Publish("e", {{"n", i}}).value());
  }
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 5; }));
  auto attempts = service_->ListAttempts(created.id, "", {.size = 100}).value();
  ASSERT_TRUE(Eventually([&] {
    attempts = service_->ListAttempts(created.id, "", {.size = 100}).value();
    return attempts.size() == 7;
  }));
  // The first message failed twice and everything else waited for it.
  std::vector<std::string> order;
  for (const auto& a : attempts) {
    if (a.outcome == "succeeded") {
      order.push_back(a.message_id);
    }
  }
  EXPECT_EQ(order, ids);
  EXPECT_EQ(attempts[0].message_id, ids[0]);
  EXPECT_EQ(attempts[1].message_id, ids[0]);
}

TEST_F(WebhooksTest, VerificationHandshakeGatesEvents) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& good = Receiver();
  Endpoint ep;
  ep.url = Url(good);
  auto verified = Create(ep, /*verify=*/true);
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(verified->endpoint.state, EndpointState::kActive);
  EXPECT_EQ(Stats(good)["verifications"], 1);

  Listener& mute = Receiver({.status = 200});  // 200 without echoing the challenge
  Endpoint ep2;
  ep2.url = Url(mute);
  auto unverified = Create(ep2, true);
  ASSERT_TRUE(unverified.ok());
  EXPECT_EQ(unverified->endpoint.state, EndpointState::kUnverified);
  EXPECT_FALSE(unverified->verification_error.empty());
  ASSERT_TRUE(Publish("e", 1).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(good)["distinct"] == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(Stats(mute)["received"], 1);  // the handshake only
}

TEST_F(WebhooksTest, SsrfGuardRefusesPrivateTargetsUnlessAllowed) {
  options_.ssrf.allow.clear();
  Open();
  for (const char* url : {"http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://2130706433/",
                          "http://[::ffff:127.0.0.1]/", "ftp://example.com/", "not a url"}) {
    Endpoint ep;
    ep.url = url;
    auto r = Create(ep);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << url;
  }
}

TEST_F(WebhooksTest, RotatedSecretSignsBesideTheNewOne) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  const std::string old_secret = GenerateSecret();
  Listener& old_only = Receiver({.secrets = {old_secret}});
  Endpoint ep;
  ep.url = Url(old_only);
  ep.secret = old_secret;
  auto created = Create(ep).value().endpoint;
  auto rotated = service_->RotateSecret(created.id, "");
  ASSERT_TRUE(rotated.ok());
  EXPECT_NE(rotated->secret, old_secret);
  ASSERT_TRUE(Publish("e", 1).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(old_only)["distinct"] == 1; }));
  EXPECT_EQ(Stats(old_only)["badSignatures"], 0);
}

TEST_F(WebhooksTest, AsymmetricEndpointsAreSignedWithEd25519) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& probe = Receiver();
  Endpoint ep;
  ep.url = Url(probe);
  ep.asymmetric = true;
  auto created = Create(ep).value().endpoint;
  const std::string public_key = PublicKeyFor(created.signing_key).value();
  ASSERT_TRUE(public_key.starts_with("whpk_"));
  Listener& rx = Receiver({.secrets = {public_key}});
  created.url = Url(rx);
  ASSERT_TRUE(service_->UpdateEndpoint(created).ok());
  ASSERT_TRUE(Publish("e", {{"n", 1}}).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 1; }));
  EXPECT_EQ(Stats(rx)["badSignatures"], 0);
  // A listener holding only the symmetric secret refuses v1a signatures.
  Listener& wrong = Receiver({.secrets = {created.secret}});
  created.url = Url(wrong);
  ASSERT_TRUE(service_->UpdateEndpoint(created).ok());
  ASSERT_TRUE(Publish("e", {{"n", 2}}).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(wrong)["badSignatures"] >= 1; }));
}

TEST_F(WebhooksTest, RetryAfterIsHonoured) {
  options_.retry_schedule = {milliseconds(10), milliseconds(10)};
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& busy = Receiver({.status = 429, .retry_after_s = 1});
  Endpoint ep;
  ep.url = Url(busy);
  auto created = Create(ep).value().endpoint;
  ASSERT_TRUE(Publish("e", 1).ok());
  std::vector<Attempt> attempts;
  ASSERT_TRUE(Eventually([&] {
    attempts = service_->ListAttempts(created.id, "", {}).value();
    return attempts.size() == 3;
  }));
  EXPECT_EQ(attempts.front().response_status, 429);
  EXPECT_EQ(attempts.front().outcome, "retrying");
  EXPECT_EQ(attempts.back().outcome, "failed");
  // The schedule says 10 ms; the answer's Retry-After: 1 wins.
  EXPECT_GE(attempts[1].created_ms - attempts[0].created_ms, 1000);
  EXPECT_GE(attempts[2].created_ms - attempts[1].created_ms, 1000);
}

TEST_F(WebhooksTest, ApplicationsSeeOnlyTheirOwnMessages) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  auto acme = service_->CreateApplication({.name = "Acme", .uid = "acme"});
  ASSERT_TRUE(acme.ok()) << acme.status();
  auto globex = service_->CreateApplication({.name = "Globex"});
  ASSERT_TRUE(globex.ok());
  EXPECT_EQ(service_->CreateApplication({.name = "again", .uid = "acme"}).status().code(),
            StatusCode::kAlreadyExists);
  Listener& a = Receiver();
  Listener& g = Receiver();
  Listener& global = Receiver();
  Endpoint ea;
  ea.url = Url(a);
  ea.application_id = acme->id;
  ASSERT_TRUE(Create(ea).ok());
  Endpoint eg;
  eg.url = Url(g);
  eg.application_id = globex->id;
  ASSERT_TRUE(Create(eg).ok());
  Endpoint e0;
  e0.url = Url(global);
  ASSERT_TRUE(Create(e0).ok());
  Endpoint bad;
  bad.url = Url(global);
  bad.application_id = "app_404";
  EXPECT_EQ(Create(bad).status().code(), StatusCode::kNotFound);

  std::promise<StatusOr<std::string>> p;
  service_->Publish("acme", "e", 1, "k", [&](const StatusOr<std::string>& r) { p.set_value(r); });
  ASSERT_TRUE(p.get_future().get().ok());  // by uid
  ASSERT_TRUE(Publish("e", 2, "k").ok());  // global, same key: another scope
  ASSERT_TRUE(
      Eventually([&] { return Stats(a)["distinct"] == 1 && Stats(global)["distinct"] == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(Stats(g)["received"], 0);
  EXPECT_EQ(Stats(a)["received"], 1);
  EXPECT_EQ(service_->DeleteApplication(acme->id).code(), StatusCode::kFailedPrecondition);
  std::promise<StatusOr<std::string>> unknown;
  service_->Publish("nope", "e", 1, "",
                    [&](const StatusOr<std::string>& r) { unknown.set_value(r); });
  EXPECT_EQ(unknown.get_future().get().status().code(), StatusCode::kNotFound);
}

TEST_F(WebhooksTest, EndpointsAndTypesSurviveARestart) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e", .description = "d"}).ok());
  Listener& rx = Receiver();
  Endpoint ep;
  ep.url = Url(rx);
  ep.rate_limit_per_second = 5;
  auto created = Create(ep).value().endpoint;
  service_->Stop();
  service_.reset();
  Open();
  auto again = service_->GetEndpoint(created.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->url, ep.url);
  EXPECT_EQ(again->rate_limit_per_second, 5);
  EXPECT_EQ(again->secret, created.secret);
  EXPECT_EQ(service_->GetEventType("e")->description, "d");
  ASSERT_TRUE(Publish("e", 1).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 1; }));
}

TEST(BodyCache, KeepsTheNewestWithinItsBytes) {
  BodyCache cache(10);
  cache.Put(1, std::make_shared<const std::string>("aaaa"));
  cache.Put(2, std::make_shared<const std::string>("bbbb"));
  ASSERT_NE(cache.Find(1), nullptr);
  EXPECT_EQ(*cache.Find(2), "bbbb");
  cache.Put(3, std::make_shared<const std::string>("cccc"));  // 12 bytes: the oldest goes
  EXPECT_EQ(cache.Find(1), nullptr);
  EXPECT_NE(cache.Find(2), nullptr);
  EXPECT_NE(cache.Find(3), nullptr);
  cache.Put(3, std::make_shared<const std::string>("dddd"));  // already there: kept as is
  EXPECT_EQ(*cache.Find(3), "cccc");
  cache.Put(4, std::make_shared<const std::string>(std::string(50, 'x')));  // alone, too big
  EXPECT_NE(cache.Find(4), nullptr);  // the newest is always kept
  EXPECT_EQ(cache.Find(3), nullptr);
}

// Deliveries enqueued by an earlier version (a JSON copy of the message), and deliveries
// whose message row a crash left uncommitted (the fan-out commits the two in parallel), are
// delivered: the first at once, the second as soon as the row is stored.
TEST_F(WebhooksTest, EarlierJobsAndJobsAheadOfTheirMessageRowAreDelivered) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e", .description = "d"}).ok());
  Listener& rx = Receiver();
  Endpoint ep;
  ep.url = Url(rx);
  const std::string id = Create(ep).value().endpoint.id;
  auto first = Publish("e", 1);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 1; }));

  queue::NewMessage legacy;
  legacy.payload = json{{"m", *first}, {"t", "e"}, {"c", 1}, {"p", 1}}.dump();
  legacy.dedupe_key = "legacy";
  queue::NewMessage ahead;
  ahead.payload = "msg_999999";
  ASSERT_TRUE(broker_->Enqueue(EndpointQueue(id), {legacy, ahead}).ok());
  service_->Stop();  // a new process: nothing cached
  service_.reset();
  Open();
  // The earlier format: the same message again, so the receiver counts a duplicate.
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["duplicates"] == 1; }));
  std::this_thread::sleep_for(milliseconds(1500));  // it waits rather than failing
  EXPECT_EQ(Stats(rx)["distinct"], 1);
  ASSERT_TRUE(db_->Exec("INSERT INTO webhook_messages(seq, id, event_type, payload, created_ms) "
                        "VALUES(999999, 'msg_999999', 'e', '2', 0)")
                  .ok());
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 2; }));
}

// The security review's poison jobs (D1), written straight into the internal queues: the
// service stays up, each is dead-lettered with the reason, and later events still flow.
TEST_F(WebhooksTest, PoisonJobsOnInternalQueuesAreDeadLetteredAndTheWorkersCarryOn) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& rx = Receiver();
  Endpoint ep;
  ep.url = Url(rx);
  const std::string id = Create(ep).value().endpoint.id;
  const std::vector<std::string> fanout_poison = {R"({"t":1})",
                                                  R"({"c":"x","t":"e"})",
                                                  R"({"e":[],"t":"e"})",
                                                  R"({"a":{},"t":"e"})",
                                                  R"({"p":1})",
                                                  "not json",
                                                  "[1,2]",
                                                  "",
                                                  R"("msg_1")",
                                                  R"({"t":null})"};
  std::vector<queue::NewMessage> jobs;
  for (const std::string& p : fanout_poison) {
    jobs.push_back({.payload = p});
  }
  ASSERT_TRUE(broker_->Enqueue(kFanoutQueue, jobs).ok());
  std::vector<queue::NewMessage> deliveries;
  deliveries.reserve(4);
  for (const char* p : {"not json", R"({"m":5})", R"({"m":null})", "[]"}) {
    deliveries.push_back({.payload = p});
  }
  ASSERT_TRUE(broker_->Enqueue(EndpointQueue(id), deliveries).ok());

  auto dead = [&](std::string_view queue) {
    auto page = broker_->ListDeadLetters(queue, std::nullopt, 100);
    return page.ok() ? page->items.size() : size_t{0};
  };
  ASSERT_TRUE(Eventually([&] { return dead(kFanoutQueue) == fanout_poison.size(); }))
      << dead(kFanoutQueue);
  ASSERT_TRUE(Eventually([&] { return dead(EndpointQueue(id)) == deliveries.size(); }))
      << dead(EndpointQueue(id));
  const auto page = broker_->ListDeadLetters(kFanoutQueue, std::nullopt, 100).value();
  for (const queue::DeadLetter& d : page.items) {
    EXPECT_NE(d.last_error.find("fan-out job"), std::string::npos) << d.last_error;
  }
  // A good event after the poison is delivered.
  ASSERT_TRUE(Publish("e", json{{"ok", true}}).ok());
  EXPECT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 1; }));
}

// Durability review D3: secret rotations raced the dispatcher's failing-streak writes (a
// receiver failing every third delivery flips the streak all the time), and 18 of 233 were
// reverted in memory and in evo.db. Every rotation's answer must be what is stored, in memory
// at once and after a restart; a delete while the streak flips must not be undone.
TEST_F(WebhooksTest, D3ConcurrentRotationsAndFailingStreakWritesLoseNoUpdate) {
  options_.retry_schedule = {milliseconds(1), milliseconds(1), milliseconds(1)};
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& flaky = Receiver({.fail_every = 3});
  Endpoint ep;
  ep.url = Url(flaky);
  ep.max_concurrency = 4;
  const std::string id = Create(ep).value().endpoint.id;
  std::atomic<bool> stop{false};
  std::vector<std::thread> publishers;
  for (int t = 0; t < 2; ++t) {
    publishers.emplace_back([&] {
      while (!stop.load()) {
        (void)Publish("e", json{{"n", 1}});
      }
    });
  }
  ASSERT_TRUE(Eventually([&] { return Stats(flaky)["failed"] >= 10; }));
  int reverted = 0;
  std::string last;
  for (int i = 0; i < 150; ++i) {
    auto rotated = service_->RotateSecret(id, "");
    ASSERT_TRUE(rotated.ok()) << rotated.status();
    last = rotated->secret;
    // A concurrent config change must not undo it either.
    ASSERT_TRUE(service_
                    ->UpdateEndpoint(id,
                                     [i](Endpoint& e) {
                                       e.description = std::to_string(i);
                                       return OkStatus();
                                     })
                    .ok());
    std::this_thread::sleep_for(milliseconds(3));  // let streak writes interleave
    reverted += service_->GetEndpoint(id)->secret != last ? 1 : 0;
  }
  const int64_t flips_seen = Stats(flaky)["failed"];
  EXPECT_EQ(reverted, 0) << "of 150 rotations, with " << flips_seen << " failed deliveries";
  EXPECT_EQ(service_->GetEndpoint(id)->secret, last);
  EXPECT_EQ(service_->GetEndpoint(id)->description, "149");

  // A second endpoint deleted while its streak flips stays deleted.
  Endpoint other;
  other.url = Url(flaky);
  const std::string gone = Create(other).value().endpoint.id;
  ASSERT_TRUE(Eventually([&] {
    auto list = service_->ListAttempts(gone, "", {});
    return list.ok() && list->size() >= 6;
  }));
  ASSERT_TRUE(service_->DeleteEndpoint(gone).ok());
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  for (auto& t : publishers) {
    t.join();
  }
  EXPECT_EQ(service_->GetEndpoint(gone).status().code(), StatusCode::kNotFound);
  service_->Stop();
  service_.reset();
  EXPECT_EQ(Count("SELECT count(*) FROM webhook_endpoints WHERE id = ?", {gone}), 0);
  Open();
  EXPECT_EQ(service_->GetEndpoint(id)->secret, last);
  EXPECT_EQ(service_->GetEndpoint(gone).status().code(), StatusCode::kNotFound);
}

// Durability review D4: failed deliveries were recorded asynchronously after their dead
// letter, so a crash lost the rows :recover reads. Now the row is durable first: whenever a
// dead letter exists, its failed row (and attempt) already does.
TEST_F(WebhooksTest, D4EveryDeadLetteredDeliveryAlreadyHasItsFailedRow) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& strict = Receiver({.status = 400});  // permanent: failed at the first attempt
  Endpoint ep;
  ep.url = Url(strict);
  const std::string id = Create(ep).value().endpoint.id;
  const int64_t before = UnixMillis(RealClock().Now());
  constexpr int kMessages = 200;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(Publish("e", json{{"n", i}}).ok());
  }
  int64_t dead = 0;
  int checks = 0;
  while (dead < kMessages && checks < 20'000) {
    ++checks;
    auto stats = broker_->Stats(EndpointQueue(id));
    ASSERT_TRUE(stats.ok());
    dead = stats->dead_letters;
    // Read after the dead letters: every one counted must have its row by now.
    const int64_t rows = Count(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND state = 'failed'", {id});
    ASSERT_GE(rows, dead) << "dead letters without their failed row";
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(dead, kMessages);
  auto attempts = service_->ListAttempts(id, "", {.size = 1000}).value();
  EXPECT_EQ(attempts.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(service_->Recover(id, before).value(), kMessages);
}

// Durability review D10: two publishes with one Idempotency-Key and different events both
// got 202. Of concurrent publishes with one key, exactly one event is accepted.
TEST_F(WebhooksTest, D10ConcurrentPublishesWithOneKeyAcceptExactlyOneEvent) {
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  constexpr int kRounds = 40;
  constexpr int kThreads = 6;
  int wrong_rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<StatusOr<std::string>> results(kThreads, InternalError("not run"));
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ++ready;
        while (ready.load() < kThreads) {
        }
        results[t] = Publish("e", json{{"variant", t}}, "key-" + std::to_string(round));
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    int accepted = 0;
    int refused = 0;
    for (const auto& r : results) {
      accepted += r.ok() ? 1 : 0;
      refused += r.status().GetPayload(kPayloadHttpStatus).value_or("") == "422" ? 1 : 0;
    }
    wrong_rounds += (accepted == 1 && refused == kThreads - 1) ? 0 : 1;
  }
  EXPECT_EQ(wrong_rounds, 0) << "of " << kRounds << " rounds";
}

// Durability report §7.15: the stored-message check of a key had no window, so a key reused
// after 24 h with another event still got 422. After the window the key is new, in memory
// and in the store (after a restart).
TEST_F(WebhooksTest, D10AnIdempotencyKeyIsNewAgainAfterItsWindow) {
  clock_ = &manual_;
  queue::BrokerOptions bo;
  bo.path = dir_.File("queue-manual.db");
  bo.sync = false;
  broker_ = queue::OpenSqliteBroker(bo, manual_, ids_).value();
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  const std::string first = Publish("e", 1, "k").value();
  manual_.Advance(std::chrono::hours(23));
  EXPECT_EQ(Publish("e", 1, "k").value_or(""), first);
  EXPECT_EQ(Publish("e", 2, "k").status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
  manual_.Advance(std::chrono::hours(2));  // 25 h after the first use
  auto again = Publish("e", 2, "k");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(*again, first);
  EXPECT_EQ(Publish("e", 3, "k").status().GetPayload(kPayloadHttpStatus).value_or(""), "422");

  // The same from the stored messages, after a restart.
  const std::string stored = Publish("e", 1, "s").value();
  ASSERT_TRUE(Eventually([&] { return service_->GetMessage(stored).ok(); }));
  StopTicking();
  Open();
  EXPECT_EQ(Publish("e", 2, "s").status().GetPayload(kPayloadHttpStatus).value_or(""), "422");
  StopTicking();
  manual_.Advance(std::chrono::hours(25));
  Open();
  auto later = Publish("e", 2, "s");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_NE(*later, stored);
  StopTicking();
}

// Durability review D12: lanes of deleted endpoints were never erased and were pumped every
// 20 ms forever. After 50 endpoints are created, used and deleted, the dispatcher holds
// lanes for the live ones only.
TEST_F(WebhooksTest, D12DeletedEndpointsLeaveNoDispatcherLane) {
  Listener& rx = Receiver();
  outbound::ClientOptions co;
  co.ssrf = options_.ssrf;
  auto client = outbound::Client::Start(co, nullptr).value();
  DispatcherHooks hooks;
  hooks.record = [](Attempt, std::string) {};
  hooks.fail = [](Attempt, std::string) {};
  hooks.disable = [](const std::string&, std::string) {};
  hooks.set_failing = [](const std::string&, int64_t) {};
  hooks.body = [](std::string_view) -> StatusOr<std::shared_ptr<const std::string>> {
    return std::make_shared<const std::string>("{}");
  };
  auto dispatcher =
      Dispatcher::Start(options_, *broker_, *client, RealClock(), hooks, nullptr).value();
  Endpoint live;
  live.id = "ep_live";
  live.url = Url(rx);
  ASSERT_TRUE(broker_->DeclareQueue(EndpointQueue(live.id), {}).ok());
  dispatcher->Update(live.id, live);
  for (int i = 0; i < 50; ++i) {
    Endpoint ep;
    ep.id = "ep_" + std::to_string(i);
    ep.url = Url(rx, "/" + ep.id);
    ASSERT_TRUE(broker_->DeclareQueue(EndpointQueue(ep.id), {}).ok());
    ASSERT_TRUE(broker_->Enqueue(EndpointQueue(ep.id), {{.payload = "msg_1"}}).ok());
    dispatcher->Update(ep.id, ep);
    dispatcher->Wake(ep.id);
  }
  ASSERT_TRUE(Eventually([&] { return Stats(rx)["distinct"] == 50; }));
  EXPECT_EQ(dispatcher->Lanes(), 51u);
  for (int i = 0; i < 50; ++i) {
    const std::string id = "ep_" + std::to_string(i);
    dispatcher->Update(id, std::nullopt);
    ASSERT_TRUE(broker_->DeleteQueue(EndpointQueue(id)).ok());
  }
  EXPECT_TRUE(Eventually([&] { return dispatcher->Lanes() == 1; })) << dispatcher->Lanes();
  dispatcher->Stop();
  client->Stop();
}

// Durability review §5: webhook_messages had no retention, and the attempts and delivery rows
// of deleted endpoints stayed forever. Messages past the retention go with their attempts;
// a deleted endpoint's attempts and rows go too; the rest stays.
TEST_F(WebhooksTest, RetentionSweepsOldMessagesAndWhatDeletedEndpointsLeft) {
  clock_ = &manual_;
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& rx = Receiver();
  Listener& strict = Receiver({.status = 400});
  Endpoint keep;
  keep.url = Url(rx);
  const std::string kept = Create(keep).value().endpoint.id;
  Endpoint doomed;
  doomed.url = Url(strict);
  const std::string gone = Create(doomed).value().endpoint.id;
  std::vector<std::string> old;
  for (int i = 0; i < 5; ++i) {
    old.push_back(Publish("e", json{{"old", i}}).value());
  }
  ASSERT_TRUE(Eventually([&] {
    return Count("SELECT count(*) FROM webhook_attempts") == 10 &&
           Count("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ?", {gone}) == 5;
  }));
  ASSERT_TRUE(service_->DeleteEndpoint(gone).ok());
  manual_.Advance(options_.retention + std::chrono::hours(1));
  const std::string fresh = Publish("e", json{{"new", 1}}).value();
  ASSERT_TRUE(Eventually([&] { return service_->GetMessage(fresh).ok(); }));
  manual_.Advance(std::chrono::minutes(2));  // the next sweep is due
  EXPECT_TRUE(Eventually([&] {
    return Count("SELECT count(*) FROM webhook_messages") == 1 &&
           Count("SELECT count(*) FROM webhook_attempts WHERE message_id != ?", {fresh}) == 0 &&
           Count("SELECT count(*) FROM webhook_deliveries") == 0;
  })) << Count("SELECT count(*) FROM webhook_messages");
  for (const std::string& id : old) {
    EXPECT_EQ(service_->GetMessage(id).status().code(), StatusCode::kNotFound);
  }
  EXPECT_TRUE(service_->GetMessage(fresh).ok());
  ASSERT_TRUE(Eventually([&] { return service_->ListAttempts(kept, "", {})->size() == 1; }));
}

// The same growth for attempts alone: a deleted endpoint's attempts go without waiting for the
// retention of their messages.
TEST_F(WebhooksTest, ADeletedEndpointsAttemptsArePurged) {
  clock_ = &manual_;
  Open();
  ASSERT_TRUE(service_->CreateEventType({.name = "e"}).ok());
  Listener& rx = Receiver();
  Endpoint ep;
  ep.url = Url(rx);
  const std::string id = Create(ep).value().endpoint.id;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Publish("e", json{{"n", i}}).ok());
  }
  ASSERT_TRUE(Eventually([&] { return service_->ListAttempts(id, "", {})->size() == 20; }));
  ASSERT_TRUE(service_->DeleteEndpoint(id).ok());
  manual_.Advance(std::chrono::minutes(2));
  EXPECT_TRUE(Eventually([&] {
    return Count("SELECT count(*) FROM webhook_attempts WHERE endpoint_id = ?", {id}) == 0;
  }));
  EXPECT_EQ(Count("SELECT count(*) FROM webhook_messages"), 20);  // within the retention
}

// Review item: stored rows were read with throwing nlohmann accessors. A damaged endpoint row
// is skipped at load (the service starts), a damaged attempt row is listed as unreadable.
TEST_F(WebhooksTest, DamagedStoredRowsAreReportedNotThrown) {
  Open();
  service_->Stop();
  service_.reset();
  ASSERT_TRUE(db_->Exec("INSERT INTO webhook_endpoints(seq, id, body) VALUES(5, 'ep_5', ?)",
                        {R"({"id":"ep_5","url":5,"maxConcurrency":"x"})"})
                  .ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO webhook_endpoints(seq, id, body) VALUES(6, 'ep_6', ?)",
                        {R"({"id":"ep_6","url":"http://127.0.0.1:9/","eventTypes":[1]})"})
                  .ok());
  ASSERT_TRUE(
      db_->Exec("INSERT INTO webhook_endpoints(seq, id, body) VALUES(7, 'ep_7', 'no')").ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO webhook_endpoints(seq, id, body) VALUES(8, 'ep_8', ?)",
                        {R"({"id":"ep_8","url":"http://127.0.0.1:9/"})"})
                  .ok());
  for (const char* body :
       {R"({"messageId":"msg_1","endpointId":"ep_8","attempt":1,"outcome":"failed"})",
        R"({"messageId":1,"endpointId":"ep_8"})", R"({"attempt":"one"})", "[]", "not json",
        R"({"requestHeaders":[1],"endpointId":"ep_8"})"}) {
    ASSERT_TRUE(db_->Exec("INSERT INTO webhook_attempts(endpoint_id, message_id, body) "
                          "VALUES('ep_8', 'msg_1', ?)",
                          {std::string(body)})
                    .ok());
  }
  Open();
  for (const char* bad : {"ep_5", "ep_6", "ep_7"}) {
    EXPECT_EQ(service_->GetEndpoint(bad).status().code(), StatusCode::kNotFound) << bad;
  }
  EXPECT_TRUE(service_->GetEndpoint("ep_8").ok());
  auto attempts = service_->ListAttempts("ep_8", "", {});
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 6u);
  EXPECT_EQ((*attempts)[0].outcome, "failed");
  for (size_t i = 1; i < attempts->size(); ++i) {
    EXPECT_EQ((*attempts)[i].outcome, "unreadable") << i;
    EXPECT_FALSE((*attempts)[i].error.empty());
  }
}

}  // namespace
}  // namespace evo::webhooks
