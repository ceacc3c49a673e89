#include "http/router.hpp"

#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace evo::http {
namespace {

using nlohmann::json;

Request MakeRequest(std::string method, std::string path) {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.target = request.path;
  return request;
}

// Answers with the route's name and its parameters, so tests see which route matched.
Handler Echo(std::string name) {
  return [name](const Request& request) -> StatusOr<Response> {
    json params = json::object();
    for (const auto& [key, value] : request.params) {
      params[key] = value;
    }
    return Response::Json(200, {{"route", name}, {"params", params}});
  };
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    router_.Get("/v1/ids", Echo("list"));
    router_.Post("/v1/ids", Echo("create"));
    router_.Get("/v1/ids/{id}", Echo("get"));
    router_.Delete("/v1/ids/{id}", Echo("delete"));
    router_.Get("/v1/ids/stats", Echo("stats"));
    router_.Get("/v1/ids/{id}/parts/{part}", Echo("part"));
    router_.Post("/v1/spam/models/{version}:activate", Echo("activate"));
    router_.Get("/v1/spam/models/{version}", Echo("model"));
    router_.Get("/v1/things:batchGet", Echo("batch"));
    router_.Get("/", Echo("root"));
    RouteOptions big;
    big.max_body_bytes = 10 << 20;
    router_.Post("/v1/uploads", Echo("upload"), big);
    router_.Get("/boom", [](const Request&) -> StatusOr<Response> {
      throw std::runtime_error("secret detail");
    });
    router_.Get("/odd", [](const Request&) -> StatusOr<Response> { throw 42; });
    router_.Get("/fail",
                [](const Request&) -> StatusOr<Response> { return AlreadyExistsError("taken"); });
    router_.Get("/raw", [](const Request&) -> StatusOr<Response> {
      Response r;
      r.body = "bytes";
      return r;
    });
  }

  Response Dispatch(std::string method, std::string path) {
    Request request = MakeRequest(std::move(method), std::move(path));
    return router_.Dispatch(request);
  }

  json Body(std::string method, std::string path) {
    return json::parse(Dispatch(std::move(method), std::move(path)).body);
  }

  Router router_;
};

TEST_F(RouterTest, MatchesLiteralsAndDecodesParams) {
  EXPECT_EQ(Body("GET", "/v1/ids")["route"], "list");
  EXPECT_EQ(Body("POST", "/v1/ids")["route"], "create");
  const json got = Body("GET", "/v1/ids/a%20b");
  EXPECT_EQ(got["route"], "get");
  EXPECT_EQ(got["params"]["id"], "a b");
  const json part = Body("GET", "/v1/ids/7/parts/x%C3%A9");
  EXPECT_EQ(part["params"]["id"], "7");
  EXPECT_EQ(part["params"]["part"], "x\xC3\xA9");
  EXPECT_EQ(Body("GET", "/")["route"], "root");
}

TEST_F(RouterTest, LiteralBeatsParam) {
  EXPECT_EQ(Body("GET", "/v1/ids/stats")["route"], "stats");
  EXPECT_EQ(Body("GET", "/v1/ids/statsx")["route"], "get");
}

TEST_F(RouterTest, CustomVerbParamStopsAtTheColon) {
  const json activated = Body("POST", "/v1/spam/models/v3:activate");
  EXPECT_EQ(activated["route"], "activate");
  EXPECT_EQ(activated["params"]["version"], "v3");
  EXPECT_EQ(Body("GET", "/v1/spam/models/v3")["params"]["version"], "v3");
  EXPECT_EQ(Body("GET", "/v1/things:batchGet")["route"], "batch");
  // Unknown verb: the plain parameter route takes the whole segment.
  EXPECT_EQ(Body("GET", "/v1/spam/models/v3:other")["params"]["version"], "v3:other");
  EXPECT_EQ(Dispatch("POST", "/v1/spam/models/:activate").status, 405);
}

// Response::prepare: a deferred answer's body built by whoever writes it (the server on the
// connection's thread; Dispatch before returning), not by the thread calling the Reply.
TEST_F(RouterTest, PrepareCompletesTheResponseAndAThrowingOneIs500) {
  std::thread::id replied_on;
  router_.HandleAsync("POST", "/v1/later", [&](const Request&, Reply reply) {
    std::thread([&replied_on, reply = std::move(reply)] {
      replied_on = std::this_thread::get_id();
      Response r = Response::Empty(200);
      r.prepare = [](Response& out) { out.body = "built"; };
      reply(std::move(r));
    }).join();
  });
  router_.HandleAsync("POST", "/v1/broken", [](const Request&, Reply reply) {
    Response r = Response::Empty(200);
    r.prepare = [](Response&) { throw std::runtime_error("bug"); };
    reply(std::move(r));
  });
  const Response built = Dispatch("POST", "/v1/later");
  EXPECT_NE(replied_on, std::this_thread::get_id());
  EXPECT_EQ(built.status, 200);
  EXPECT_EQ(built.body, "built");
  EXPECT_FALSE(built.prepare);
  EXPECT_EQ(Dispatch("POST", "/v1/broken").status, 500);
}

TEST_F(RouterTest, UnknownPathIs404Problem) {
  const Response r = Dispatch("GET", "/v2/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.Get("Content-Type"), "application/problem+json");
  EXPECT_EQ(json::parse(r.body)["code"], "NOT_FOUND");
}

TEST_F(RouterTest, TrailingSlashAndEmptySegmentsDoNotMatch) {
  EXPECT_EQ(Dispatch("GET", "/v1/ids/").status, 404);
  EXPECT_EQ(Dispatch("GET", "/v1//ids").status, 404);
  EXPECT_EQ(Dispatch("GET", "//").status, 404);
  EXPECT_EQ(Dispatch("GET", "").status, 404);
  EXPECT_EQ(Dispatch("GET", "v1/ids").status, 404);
}

TEST_F(RouterTest, DotSegmentsAndBackslashesAreNeverResolved) {
  for (const char* path :
       {"/v1/ids/..", "/v1/ids/.", "/v1/ids/%2e%2e", "/v1/ids/%2E%2e", "/v1/ids/%2e",
        "/v1/../v1/ids", "/v1/ids/..\\..\\etc", "/v1/ids/a%5cb", "/v1/%2e%2e/v1/ids"}) {
    EXPECT_EQ(Dispatch("GET", path).status, 404) << path;
  }
}

TEST_F(RouterTest, BadParamEncodingIs400) {
  for (const char* path : {"/v1/ids/a%2Fb", "/v1/ids/%00", "/v1/ids/%FF", "/v1/ids/%C0%AF",
                           "/v1/ids/%G1", "/v1/ids/abc%", "/v1/ids/%0a"}) {
    const Response r = Dispatch("GET", path);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_EQ(json::parse(r.body)["reason"], "INVALID_PATH_PARAMETER") << path;
  }
  // Double encoding is decoded once: the handler sees "%2e%2e%2f", not a traversal.
  EXPECT_EQ(Body("GET", "/v1/ids/%252e%252e%252f")["params"]["id"], "%2e%2e%2f");
}

TEST_F(RouterTest, WrongMethodIs405WithSortedAllow) {
  const Response r = Dispatch("PUT", "/v1/ids/7");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers.Get("Allow"), "DELETE, GET, HEAD, OPTIONS");
  EXPECT_EQ(json::parse(r.body)["status"], 405);
  EXPECT_EQ(Dispatch("PUT", "/v1/ids").headers.Get("Allow"), "GET, HEAD, OPTIONS, POST");
  EXPECT_EQ(Dispatch("POST", "/v1/spam/models/v1:activate").status, 200);
  EXPECT_EQ(Dispatch("GET", "/v1/spam/models/v1:activate").headers.Get("Allow"), "OPTIONS, POST");
}

TEST_F(RouterTest, UnknownMethodIs405) {
  const Response r = Dispatch("BREW", "/v1/ids");
  EXPECT_EQ(r.status, 405);
  EXPECT_TRUE(r.headers.Get("Allow"));
}

TEST_F(RouterTest, HeadRunsGetWithoutBodyButWithItsLength) {
  const Response get = Dispatch("GET", "/v1/ids/7");
  const Response head = Dispatch("HEAD", "/v1/ids/7");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.headers.Get("Content-Length"), std::to_string(get.body.size()));
  EXPECT_EQ(head.headers.Get("Content-Type"), "application/json");
  EXPECT_EQ(Dispatch("HEAD", "/v1/uploads").status, 405);
}

TEST_F(RouterTest, OptionsAnswers204WithAllow) {
  const Response r = Dispatch("OPTIONS", "/v1/ids");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.headers.Get("Allow"), "GET, HEAD, OPTIONS, POST");
}

TEST_F(RouterTest, ExceptionsBecome500WithoutDetails) {
  for (const char* path : {"/boom", "/odd"}) {
    const Response r = Dispatch("GET", path);
    EXPECT_EQ(r.status, 500);
    const json body = json::parse(r.body);
    EXPECT_EQ(body["detail"], "internal error");
    EXPECT_EQ(body["code"], "INTERNAL");
    EXPECT_EQ(r.body.find("secret"), std::string::npos);
  }
}

TEST_F(RouterTest, HandlerErrorsBecomeProblems) {
  const Response r = Dispatch("GET", "/fail");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(json::parse(r.body)["code"], "ALREADY_EXISTS");
}

TEST_F(RouterTest, AddsAContentTypeWhenTheHandlerDidNot) {
  EXPECT_EQ(Dispatch("GET", "/raw").headers.Get("Content-Type"), "application/octet-stream");
}

TEST_F(RouterTest, FindReportsRouteMethodAndBodyLimit) {
  Router::Match m = router_.Find("GET", "/v1/ids/9");
  EXPECT_TRUE(m.found);
  EXPECT_TRUE(m.method_allowed);
  EXPECT_EQ(m.route, "/v1/ids/{id}");
  EXPECT_EQ(m.max_body_bytes, 0U);
  m = router_.Find("POST", "/v1/uploads");
  EXPECT_EQ(m.max_body_bytes, 10U << 20);
  m = router_.Find("PATCH", "/v1/ids/9");
  EXPECT_TRUE(m.found);
  EXPECT_FALSE(m.method_allowed);
  EXPECT_EQ(m.route, "/v1/ids/{id}");
  EXPECT_TRUE(router_.Find("HEAD", "/v1/ids/9").method_allowed);
  EXPECT_TRUE(router_.Find("OPTIONS", "/v1/ids/9").method_allowed);
  EXPECT_FALSE(router_.Find("GET", "/v1/ids/9/x").found);
  EXPECT_FALSE(router_.Find("GET", "/v1/ids/..").found);
}

TEST_F(RouterTest, ReRegisteringReplacesTheHandler) {
  router_.Get("/v1/ids", Echo("list2"));
  EXPECT_EQ(Body("GET", "/v1/ids")["route"], "list2");
}

TEST_F(RouterTest, InvalidPatternsAreIgnored) {
  router_.Get("no-slash", Echo("x"));
  router_.Get("/a/{", Echo("x"));
  router_.Get("/a/{b}:v/c", Echo("x"));
  router_.Get("/a//b", Echo("x"));
  EXPECT_EQ(Dispatch("GET", "/a//b").status, 404);
}

TEST_F(RouterTest, VeryDeepPathIs404) {
  std::string path;
  for (int i = 0; i < 1000; ++i) {
    path += "/a";
  }
  EXPECT_EQ(Dispatch("GET", path).status, 404);
}

TEST_F(RouterTest, OpenApiDescribesEveryRoute) {
  RouteOptions options;
  options.openapi = {
      {"summary", "Get a part"},
      {"parameters",
       {{{"name", "id"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "integer"}}}}}},
      {"responses", {{"200", {{"description", "OK"}}}}}};
  router_.Get("/v1/ids/{id}/parts/{part}", Echo("part"), options);
  const json doc = router_.OpenApi("evo", "1.2.3");
  EXPECT_EQ(doc["openapi"], "3.1.0");
  EXPECT_EQ(doc["info"]["title"], "evo");
  EXPECT_EQ(doc["info"]["version"], "1.2.3");
  ASSERT_TRUE(doc["components"]["schemas"].contains("Problem"));
  const json& op = doc["paths"]["/v1/ids/{id}/parts/{part}"]["get"];
  EXPECT_EQ(op["summary"], "Get a part");
  ASSERT_EQ(op["parameters"].size(), 2U);
  EXPECT_EQ(op["parameters"][0]["schema"]["type"], "integer");  // declared one kept
  EXPECT_EQ(op["parameters"][1]["name"], "part");               // missing one added
  EXPECT_EQ(op["parameters"][1]["in"], "path");
  EXPECT_EQ(op["parameters"][1]["required"], true);
  EXPECT_EQ(op["responses"]["200"]["description"], "OK");
  EXPECT_EQ(op["responses"]["default"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem");
  EXPECT_TRUE(doc["paths"]["/v1/ids"].contains("post"));
  EXPECT_TRUE(doc["paths"]["/v1/spam/models/{version}:activate"].contains("post"));
  EXPECT_FALSE(doc["paths"]["/v1/ids"].contains("parameters"));
  EXPECT_FALSE(doc["paths"]["/v1/ids"]["get"].contains("parameters"));
}

TEST_F(RouterTest, OpenApiDeclaresTheServerAndTheRouterAnswers) {
  RouteOptions list;
  list.openapi = {{"parameters", PageParametersSpec()},
                  {"responses", {{"200", {{"description", "OK"}}}}}};
  router_.Get("/v1/things", Echo("things"), list);
  RouteOptions own;
  own.openapi = {{"responses", {{"400", ProblemResponseSpec("Not a version number.")}}}};
  router_.Get("/v1/spam/models/{version}", Echo("model"), own);
  const json doc = router_.OpenApi("evo", "1.2.3");
  EXPECT_EQ(doc["servers"], json::parse(R"([{"url": "/",
      "description": "The evo instance serving this document."}])"));
  const json& refused = doc["components"]["responses"]["RequestRefused"];
  EXPECT_EQ(refused["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem");

  // Every operation may be refused by the server before its handler runs.
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      EXPECT_EQ(op["responses"]["4XX"]["$ref"], "#/components/responses/RequestRefused")
          << method << " " << path;
    }
  }
  // No parameters: nothing the router checks, so no 400 of its own.
  EXPECT_FALSE(doc["paths"]["/v1/ids"]["get"]["responses"].contains("400"));
  // Path parameters are checked by the router; query parameters by Request::Query.
  const json& part = doc["paths"]["/v1/ids/{id}/parts/{part}"]["get"]["responses"]["400"];
  EXPECT_NE(part["description"].get<std::string>().find("path parameter"), std::string::npos);
  EXPECT_EQ(part["description"].get<std::string>().find("query"), std::string::npos);
  const json& things = doc["paths"]["/v1/things"]["get"]["responses"]["400"];
  EXPECT_NE(things["description"].get<std::string>().find("query string"), std::string::npos);
  // A route's own description of a code wins.
  EXPECT_EQ(doc["paths"]["/v1/spam/models/{version}"]["get"]["responses"]["400"]["description"],
            "Not a version number.");
}

TEST(RouterDeathTest, AnOperationIdUsedTwiceStopsTheProcess) {
  RouteOptions update;
  update.openapi = {{"operationId", "updateThing"}};
  Router router;
  router.Put("/v1/things/{name}", Echo("put"), update);
  router.Put("/v1/things/{name}", Echo("put again"), update);  // a replacement keeps its id
  EXPECT_DEATH(router.Patch("/v1/things/{name}", Echo("patch"), update),
               "operationId 'updateThing' of PATCH /v1/things/\\{name\\} is already used by "
               "PUT /v1/things/\\{name\\}");
}

TEST(RouterAsync, DeferredRouteFinishesThroughTheCallbackWithDispatchPostProcessing) {
  Router router;
  Reply saved;
  router.HandleAsync("GET", "/v1/later/{id}", [&saved](const Request& request, Reply reply) {
    EXPECT_EQ(request.Param("id"), "7");
    saved = std::move(reply);
  });
  Request request = MakeRequest("HEAD", "/v1/later/7");
  std::optional<Response> finished;
  const std::optional<Response> now =
      router.DispatchDeferred(request, [&](Response response) { finished = std::move(response); });
  EXPECT_FALSE(now);
  EXPECT_FALSE(finished);
  ASSERT_TRUE(saved);
  saved(Response::Text(200, "abc"));
  ASSERT_TRUE(finished);
  EXPECT_EQ(finished->status, 200);
  EXPECT_EQ(finished->body, "");  // HEAD keeps the length, drops the body
  EXPECT_EQ(finished->headers.Get("Content-Length").value_or(""), "3");
  saved(Response::Text(500, "again"));  // a second reply is ignored
  EXPECT_EQ(finished->status, 200);
}

TEST(RouterAsync, ErrorsBecomeProblemsAndSyncRoutesAnswerAtOnce) {
  Router router;
  router.HandleAsync("POST", "/v1/fail", [](const Request&, Reply reply) {
    std::thread([reply = std::move(reply)] { reply(NotFoundError("no such queue")); }).join();
  });
  router.HandleAsync("POST", "/v1/throw",
                     [](const Request&, Reply) { throw std::runtime_error("boom"); });
  router.Get("/v1/now", Echo("now"));
  Request fail = MakeRequest("POST", "/v1/fail");
  EXPECT_EQ(router.Dispatch(fail).status, 404);  // Dispatch waits for the deferred answer
  Request boom = MakeRequest("POST", "/v1/throw");
  EXPECT_EQ(router.Dispatch(boom).status, 500);
  Request now = MakeRequest("GET", "/v1/now");
  bool called = false;
  const auto answer = router.DispatchDeferred(now, [&](Response) { called = true; });
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200);
  EXPECT_FALSE(called);
}

// Routes with scopes, and an authenticator that knows two bearer tokens.
class RouterAuth : public ::testing::Test {
 protected:
  RouterAuth() {
    RouteOptions read;
    read.scope = "ids:read";
    RouteOptions write;
    write.scope = "ids:write";
    const Handler who = [](const Request& r) -> StatusOr<Response> {
      return Response::Json(200, {{"subject", r.principal.subject},
                                  {"admin", r.principal.Has("admin")},
                                  {"scopes", r.principal.scopes}});
    };
    router_.Get("/v1/read", who, read);
    router_.Post("/v1/write", who, write);
    router_.Get("/v1/public", who);
  }

  void TurnOn() {
    router_.SetAuthenticator([](const Request& r) -> StatusOr<auth::Principal> {
      const auto header = r.headers.Get("Authorization");
      auth::Principal p;
      p.kind = auth::Principal::Kind::kApiKey;
      if (header && *header == "Bearer reader") {
        p.subject = "key_reader";
        p.scopes = {"ids:read"};
        return p;
      }
      if (header && *header == "Bearer root") {
        p.subject = "key_root";
        p.scopes = {"admin"};
        return p;
      }
      return UnauthenticatedError(header ? "the token is not accepted"
                                         : "a bearer token is required");
    });
  }

  Response Call(std::string method, std::string path, std::string authorization = "",
                std::string query = "") {
    Request request = MakeRequest(std::move(method), std::move(path));
    request.query = std::move(query);
    if (!authorization.empty()) {
      request.headers.Add("Authorization", std::move(authorization));
    }
    return router_.Dispatch(request);
  }

  Router router_;
};

TEST_F(RouterAuth, OffEveryScopedRouteActsAsAdmin) {
  const Response r = Call("POST", "/v1/write");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(json::parse(r.body)["admin"].get<bool>());
}

TEST_F(RouterAuth, MissingOrRefusedCredentialsAre401WithAChallenge) {
  TurnOn();
  for (const std::string& authorization :
       {std::string(), std::string("Bearer nope"), std::string("Basic cm9vdDpyb290")}) {
    const Response r = Call("GET", "/v1/read", authorization);
    EXPECT_EQ(r.status, 401) << authorization;
    EXPECT_EQ(*r.headers.Get("WWW-Authenticate"), R"(Bearer realm="evo", error="invalid_token")");
    EXPECT_EQ(json::parse(r.body)["reason"], "UNAUTHENTICATED");
    EXPECT_EQ(r.body.find("nope"), std::string::npos);  // the token is never echoed
  }
}

TEST_F(RouterAuth, ATokenInTheQueryStringIsRefusedEvenAValidOne) {
  TurnOn();
  const Response r = Call("GET", "/v1/read", "", "access_token=root");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find("Authorization header"),
            std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/read", "Bearer reader", "access_token=x").status, 401);
}

TEST_F(RouterAuth, AMissingScopeIs403NamingItAndAdminImpliesEveryScope) {
  TurnOn();
  EXPECT_EQ(Call("GET", "/v1/read", "Bearer reader").status, 200);
  const Response refused = Call("POST", "/v1/write", "Bearer reader");
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(*refused.headers.Get("WWW-Authenticate"),
            R"(Bearer realm="evo", error="insufficient_scope", scope="ids:write")");
  EXPECT_EQ(json::parse(refused.body)["reason"], "INSUFFICIENT_SCOPE");
  EXPECT_NE(refused.body.find("ids:write"), std::string::npos);
  const Response root = Call("POST", "/v1/write", "Bearer root");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(json::parse(root.body)["subject"], "key_root");
}

// The seed's defect (go-grpc-event): a request header that grants admin to whoever sends it.
TEST_F(RouterAuth, HeadersClaimingARoleGrantNothing) {
  TurnOn();
  for (const char* header : {"Grpc-Metadata-Admin", "X-Admin", "X-User-Role", "X-Scopes"}) {
    Request request = MakeRequest("POST", "/v1/write");
    request.headers.Add(header, "admin");
    request.headers.Add("Authorization", "Bearer reader");
    EXPECT_EQ(router_.Dispatch(request).status, 403) << header;
    Request anonymous = MakeRequest("POST", "/v1/write");
    anonymous.headers.Add(header, "true");
    EXPECT_EQ(router_.Dispatch(anonymous).status, 401) << header;
  }
}

TEST_F(RouterAuth, PublicRoutesNeverAskAndSeeNoPrincipal) {
  TurnOn();
  Request request = MakeRequest("GET", "/v1/read");
  request.headers.Add("Authorization", "Bearer root");
  ASSERT_EQ(router_.Dispatch(request).status, 200);
  // The same Request object reused for a public route (as a keep-alive connection does)
  // carries no principal over.
  request.path = request.target = "/v1/public";
  const Response r = router_.Dispatch(request);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["subject"], "");
  EXPECT_FALSE(json::parse(r.body)["admin"].get<bool>());
}

TEST_F(RouterAuth, OpenApiListsTheBearerSchemeAndEachOperationsScope) {
  const json doc = router_.OpenApi("t", "1");
  EXPECT_EQ(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
  EXPECT_EQ(doc["paths"]["/v1/write"]["post"]["security"],
            json::parse(R"([{"bearer":["ids:write"]}])"));
  EXPECT_TRUE(doc["paths"]["/v1/write"]["post"]["responses"].contains("403"));
  EXPECT_EQ(doc["paths"]["/v1/public"]["get"]["security"], json::array());
}

}  // namespace
}  // namespace evo::http
