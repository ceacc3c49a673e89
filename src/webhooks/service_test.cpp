// The webhook service end to end inside one process: a real queue broker and store on a temp
// dir, real HTTP deliveries to `evo webhooks listen`'s receiver on loopback.
#include "webhooks/webhooks.hpp"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

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

  void Open() { service_ = Service::Open(options_, *db_, *broker_, ids_, RealClock()).value(); }

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

}  // namespace
}  // namespace evo::webhooks
