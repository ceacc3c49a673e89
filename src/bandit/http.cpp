// Request bodies are checked field by field (400 with a JSON pointer); unknown fields are
// ignored, output-only fields (createTime, updateTime, winner) too. The pull and reward
// routes build their answers by hand: they are the hot path.
#include "bandit/http.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/logging.hpp"

namespace evo::bandit {
namespace {

using nlohmann::json;

constexpr size_t kMaxRewardBatch = 1000;

// The body as an object; an empty body is {} when `allow_empty` (a pull needs no body).
StatusOr<json> ObjectBody(const http::Request& request, bool allow_empty) {
  if (allow_empty && request.body.empty()) {
    return json::object();
  }
  return request.JsonObjectBody();
}

json StatsJson(const ExperimentStats& s) {
  json arms = json::array();
  for (const ArmStats& a : s.arms) {
    arms.push_back({{"name", a.name},
                    {"retired", a.retired},
                    {"pulls", a.pulls},
                    {"rewards", a.rewards},
                    {"expired", a.expired},
                    {"rewardSum", a.reward_sum},
                    {"mean", a.mean},
                    {"ci95", {a.ci_low, a.ci_high}},
                    {"probabilityBest", a.probability_best}});
  }
  json out = {{"arms", std::move(arms)},
              {"pulls", s.pulls},
              {"pending", s.pending},
              {"stickyUnits", s.sticky_units},
              {"regretEstimate", s.regret_estimate},
              {"probabilityBestSamples", s.probability_samples},
              {"probabilityBestError", s.probability_error}};
  out["winner"] = s.winner ? json(*s.winner) : json(nullptr);
  return out;
}

// One reward object {"pullId","reward"}; `pointer` names it in errors.
StatusOr<std::pair<std::string, double>> ParseReward(const json& r, const std::string& pointer) {
  if (!r.is_object()) {
    return http::InvalidField(pointer, "a reward is an object {\"pullId\", \"reward\"}");
  }
  const auto id = r.find("pullId");
  if (id == r.end() || !id->is_string()) {
    return http::InvalidField(pointer + "/pullId", "pullId is required and must be a string");
  }
  const auto value = r.find("reward");
  if (value == r.end() || !value->is_number()) {
    return http::InvalidField(pointer + "/reward", "reward is required and must be a number");
  }
  return std::make_pair(id->get<std::string>(), value->get<double>());
}

json NameParameter() {
  return {{"name", "name"},
          {"in", "path"},
          {"required", true},
          {"schema", {{"type", "string"}, {"pattern", "^[A-Za-z0-9._-]{1,64}$"}}}};
}

json SpecSchema() {
  return {{"type", "object"},
          {"required", {"name", "arms"}},
          {"properties",
           {{"name", {{"type", "string"}, {"pattern", "^[A-Za-z0-9._-]{1,64}$"}}},
            {"arms",
             {{"type", "array"},
              {"minItems", 1},
              {"maxItems", 1000},
              {"items",
               {{"type", "object"},
                {"required", {"name"}},
                {"properties",
                 {{"name", {{"type", "string"}, {"minLength", 1}, {"maxLength", 64}}},
                  {"payload", {{"description", "Any JSON to hand out with the arm (<= 16 KiB)."}}},
                  {"retired", {{"type", "boolean"}}}}}}}}},
            {"policy",
             {{"type", "object"},
              {"properties",
               {{"type",
                 {{"type", "string"},
                  {"enum",
                   {"thompson", "klucb", "ucb1", "epsilon-greedy", "softmax", "exp3",
                    "discounted-thompson", "sliding-window-thompson"}},
                  {"default", "thompson"}}},
                {"epsilon", {{"type", "number"}}},
                {"temperature", {{"type", "number"}}},
                {"gamma", {{"type", "number"}}},
                {"discount", {{"type", "number"}}},
                {"window", {{"type", "integer"}}}}}}},
            {"rewardType", {{"type", "string"}, {"enum", {"bernoulli", "real"}}}},
            {"attributionWindowSeconds",
             {{"type", "integer"}, {"minimum", 1}, {"maximum", 2592000}, {"default", 3600}}},
            {"minTraffic", {{"type", "number"}, {"minimum", 0}}},
            {"stopRule",
             {{"type", "object"},
              {"properties",
               {{"probabilityBest", {{"type", "number"}}}, {"minPulls", {{"type", "integer"}}}}}}},
            {"createTime", {{"type", "string"}, {"readOnly", true}}},
            {"updateTime", {{"type", "string"}, {"readOnly", true}}},
            {"winner", {{"type", {"string", "null"}}, {"readOnly", true}}}}}};
}

json StatsSchema() {
  return {{"type", "object"},
          {"properties",
           {{"arms",
             {{"type", "array"},
              {"items",
               {{"type", "object"},
                {"properties",
                 {{"name", {{"type", "string"}}},
                  {"pulls", {{"type", "integer"}}},
                  {"rewardSum", {{"type", "number"}}},
                  {"mean", {{"type", "number"}}},
                  {"ci95", {{"type", "array"}, {"items", {{"type", "number"}}}}},
                  {"probabilityBest", {{"type", "number"}}}}}}}}},
            {"regretEstimate", {{"type", "number"}}}}}};
}

const json& Errors() {
  static const json errors = {
      {"400", http::ProblemResponseSpec("Malformed body or a field of the wrong type or range; "
                                        "errors[].pointer names it.")},
      {"404", http::ProblemResponseSpec("No such experiment (or pull).")},
      {"415", http::ProblemResponseSpec("Body is not application/json.")}};
  return errors;
}

}  // namespace

void RegisterRoutes(http::Router& router, Service& service, metrics::Registry& registry,
                    const std::string& compat_experiment) {
  auto& pulls_family = registry.AddCounter("evo_bandit_pulls_total", "Arms served.", {});
  auto* pulls_total = &pulls_family.Get({});
  auto& rewards_family =
      registry.AddCounter("evo_bandit_rewards_total", "Rewards credited (in time or late).", {});
  auto* rewards_total = &rewards_family.Get({});
  registry.AddCounterCallback(
      "evo_bandit_journal_syncs_total", "msyncs of the bandit journal (--bandit-sync).",
      [&service] { return static_cast<double>(service.Counters().journal_syncs); });
  registry.AddCounterCallback(
      "evo_bandit_snapshots_total", "Bandit snapshots made durable.",
      [&service] { return static_cast<double>(service.Counters().snapshots); });
  registry.AddCounterCallback(
      "evo_bandit_snapshot_failures_total",
      "Bandit snapshots that failed (their journals kept, retried).",
      [&service] { return static_cast<double>(service.Counters().snapshot_failures); });

  // Definition changes wait for a durable SQLite commit and statistics run a Monte Carlo:
  // blocking threads, not I/O threads. Pulls and rewards are the hot path and take
  // microseconds, unless each one waits for its msync (--bandit-sync always).
  const bool answers_wait_for_msync = service.options().sync == SyncMode::kAlways;
  http::RouteOptions create;
  create.scope = "bandit:write";
  create.blocking = true;
  create.openapi = {{"summary", "Create an experiment"},
                    {"operationId", "createExperiment"},
                    {"tags", {"bandit"}},
                    {"requestBody", http::JsonRequestSpec(SpecSchema())},
                    {"responses",
                     {{"201", http::JsonResponseSpec("The experiment.", SpecSchema())},
                      {"400", Errors()["400"]},
                      {"409", http::ProblemResponseSpec("An experiment with that name exists.")},
                      {"415", Errors()["415"]}}}};
  router.Post(
      "/v1/experiments",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, ObjectBody(request, false));
        EVO_ASSIGN_OR_RETURN(ExperimentSpec spec, ParseSpec(body));
        EVO_ASSIGN_OR_RETURN(ExperimentSpec created, service.Create(std::move(spec)));
        http::Response r = http::Response::Json(201, ToJson(created));
        r.headers.Set("Location", "/v1/experiments/" + created.name);
        return r;
      },
      create);

  http::RouteOptions list;
  list.scope = "bandit:read";
  list.openapi = {
      {"summary", "List experiments"},
      {"operationId", "listExperiments"},
      {"tags", {"bandit"}},
      {"parameters", http::PageParametersSpec()},
      {"responses",
       {{"200", http::JsonResponseSpec(
                    "A page of experiments by name; nextPageToken when there is more.")},
        {"400", Errors()["400"]}}}};
  router.Get(
      "/v1/experiments",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const size_t size, http::PageSizeParam(request));
        EVO_ASSIGN_OR_RETURN(auto token, request.Query("pageToken"));
        std::string after;
        if (token && !token->empty()) {
          // The token is the last name of the previous page, prefixed so that it is opaque.
          if (!token->starts_with("after:") || token->size() > 6 + 64) {
            return http::InvalidField("#/pageToken", "pageToken is not one this service issued");
          }
          after = token->substr(6);
        }
        std::vector<ExperimentSpec> page = service.List(after, size + 1);
        json out = {{"experiments", json::array()}};
        for (size_t i = 0; i < page.size() && i < size; ++i) {
          out["experiments"].push_back(ToJson(page[i]));
        }
        if (page.size() > size) {
          out["nextPageToken"] = "after:" + page[size - 1].name;
        }
        return http::Response::Json(200, out);
      },
      list);

  http::RouteOptions get;
  get.scope = "bandit:read";
  get.openapi = {{"summary", "Get an experiment"},
                 {"operationId", "getExperiment"},
                 {"tags", {"bandit"}},
                 {"parameters", {NameParameter()}},
                 {"responses",
                  {{"200", http::JsonResponseSpec("The experiment.", SpecSchema())},
                   {"404", Errors()["404"]}}}};
  router.Get(
      "/v1/experiments/{name}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(ExperimentSpec spec, service.Get(request.Param("name")));
        return http::Response::Json(200, ToJson(spec));
      },
      get);

  http::RouteOptions update;
  update.scope = "bandit:write";
  update.blocking = true;
  update.openapi = {
      {"summary", "Replace an experiment's settings"},
      {"description",
       "Policy parameters (not its type), window, traffic floor, stop rule, payloads and "
       "retired flags may change; arms may be appended, never removed or renamed."},
      {"operationId", "updateExperiment"},
      {"tags", {"bandit"}},
      {"parameters", {NameParameter()}},
      {"requestBody", http::JsonRequestSpec(SpecSchema())},
      {"responses",
       {{"200", http::JsonResponseSpec("The experiment.", SpecSchema())},
        {"400", Errors()["400"]},
        {"404", Errors()["404"]},
        {"415", Errors()["415"]}}}};
  const auto do_update = [&service](const http::Request& request) -> StatusOr<http::Response> {
    EVO_ASSIGN_OR_RETURN(json body, ObjectBody(request, false));
    const std::string name(request.Param("name"));
    if (const auto it = body.find("name"); it == body.end() || it->is_null()) {
      body["name"] = name;
    } else if (!it->is_string() || *it != name) {
      return http::InvalidField("#/name", "name must match the experiment in the path");
    }
    EVO_ASSIGN_OR_RETURN(ExperimentSpec spec, ParseSpec(body));
    EVO_ASSIGN_OR_RETURN(ExperimentSpec updated, service.Update(spec));
    return http::Response::Json(200, ToJson(updated));
  };
  router.Put("/v1/experiments/{name}", do_update, update);
  // PATCH is the same full replacement, for clients that send one; it needs its own
  // operationId (client generators name a function after it).
  update.openapi["operationId"] = "patchExperiment";
  update.openapi["summary"] = "Replace an experiment's settings (the same as PUT)";
  router.Patch("/v1/experiments/{name}", do_update, update);

  http::RouteOptions remove;
  remove.scope = "bandit:write";
  remove.blocking = true;
  remove.openapi = {
      {"summary", "Delete an experiment (its state and pending pulls)"},
      {"operationId", "deleteExperiment"},
      {"tags", {"bandit"}},
      {"parameters", {NameParameter()}},
      {"responses", {{"204", {{"description", "Deleted."}}}, {"404", Errors()["404"]}}}};
  router.Delete(
      "/v1/experiments/{name}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_RETURN_IF_ERROR(service.Delete(request.Param("name")));
        return http::Response::Empty(204);
      },
      remove);

  http::RouteOptions pull;
  // a pull is recorded (and later rewarded): a change
  pull.scope = "bandit:write";
  pull.blocking = answers_wait_for_msync;
  pull.openapi = {
      {"summary", "Choose an arm"},
      {"description",
       "With a unitId, the same unit gets the same arm while the experiment remembers it (its "
       "most recently seen units, --bandit-max-sticky-units)."},
      {"operationId", "pullArm"},
      {"tags", {"bandit"}},
      {"parameters", {NameParameter()}},
      {"requestBody",
       {{"required", false},
        {"content",
         {{"application/json",
           {{"schema",
             {{"type", "object"},
              {"properties", {{"unitId", {{"type", "string"}, {"maxLength", 256}}}}}}}}}}}}},
      {"responses",
       {{"200", http::JsonResponseSpec("The arm to show and the pull id to reward.",
                                       {{"type", "object"},
                                        {"properties",
                                         {{"pullId", {{"type", "string"}}},
                                          {"arm", {{"type", "string"}}},
                                          {"payload", json::object()}}}})},
        {"400", Errors()["400"]},
        {"404", Errors()["404"]}}}};
  router.Post(
      "/v1/experiments/{name}/pulls",
      [&service, pulls_total](const http::Request& request) -> StatusOr<http::Response> {
        std::string unit;
        if (!request.body.empty()) {
          EVO_ASSIGN_OR_RETURN(const json body, ObjectBody(request, true));
          if (const auto it = body.find("unitId"); it != body.end() && !it->is_null()) {
            if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
                it->get_ref<const std::string&>().size() > 256) {
              return http::InvalidField("#/unitId", "unitId must be a string of 1..256 characters");
            }
            EVO_RETURN_IF_ERROR(
                http::CheckIdentifier(it->get_ref<const std::string&>(), "#/unitId"));
            unit = it->get<std::string>();
          }
        }
        EVO_ASSIGN_OR_RETURN(PullResult r, service.Pull(request.Param("name"), unit));
        pulls_total->Inc();
        std::string out = R"({"pullId":")";
        out += r.pull_id;
        out += R"(","arm":")";
        logging::AppendJsonEscaped(out, r.arm);
        out += R"(","payload":)";
        out += r.payload.dump();
        out += '}';
        return http::Response::Text(200, std::move(out), "application/json");
      },
      pull);

  http::RouteOptions reward;
  reward.scope = "bandit:write";
  reward.blocking = answers_wait_for_msync;
  reward.openapi = {
      {"summary", "Report the reward of a pull (or a batch)"},
      {"description",
       "Credited to the arm served for that pull, at most once (409 for a second). A reward "
       "after the attribution window is recorded in the statistics."},
      {"operationId", "rewardPull"},
      {"tags", {"bandit"}},
      {"parameters", {NameParameter()}},
      {"requestBody", http::JsonRequestSpec(
                          {{"type", "object"},
                           {"properties",
                            {{"pullId", {{"type", "string"}}},
                             {"reward", {{"type", "number"}}},
                             {"rewards", {{"type", "array"}, {"maxItems", kMaxRewardBatch}}}}}})},
      {"responses",
       {{"200", http::JsonResponseSpec("Credited.")},
        {"400", Errors()["400"]},
        {"404", Errors()["404"]},
        {"409", http::ProblemResponseSpec("This pull already has its reward.")}}}};
  router.Post(
      "/v1/experiments/{name}/rewards",
      [&service, rewards_total](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, ObjectBody(request, false));
        const std::string_view name = request.Param("name");
        if (const auto batch = body.find("rewards"); batch != body.end()) {
          if (!batch->is_array() || batch->empty() || batch->size() > kMaxRewardBatch) {
            return http::InvalidField(
                "#/rewards",
                fmt::format("rewards must be an array of 1..{} objects", kMaxRewardBatch));
          }
          // Each item is checked first, so that a malformed batch changes nothing; then each is
          // credited and answered on its own (a duplicate does not undo the others).
          std::vector<std::pair<std::string, double>> items;
          for (size_t i = 0; i < batch->size(); ++i) {
            EVO_ASSIGN_OR_RETURN(auto item,
                                 ParseReward((*batch)[i], "#/rewards/" + std::to_string(i)));
            items.push_back(std::move(item));
          }
          json results = json::array();
          for (const auto& [id, value] : items) {
            auto arm = service.Reward(name, id, value);
            if (arm.ok()) {
              rewards_total->Inc();
              results.push_back({{"pullId", id}, {"arm", *arm}, {"status", 200}});
            } else {
              results.push_back({{"pullId", id},
                                 {"status", arm.status().code() == StatusCode::kAlreadyExists ? 409
                                            : arm.status().code() == StatusCode::kNotFound    ? 404
                                                                                           : 400},
                                 {"detail", std::string(arm.status().message())}});
            }
          }
          return http::Response::Json(200, {{"results", std::move(results)}});
        }
        EVO_ASSIGN_OR_RETURN(auto item, ParseReward(body, "#"));
        EVO_ASSIGN_OR_RETURN(std::string arm, service.Reward(name, item.first, item.second));
        rewards_total->Inc();
        std::string out = R"({"pullId":")";
        logging::AppendJsonEscaped(out, item.first);
        out += R"(","arm":")";
        logging::AppendJsonEscaped(out, arm);
        out += R"("})";
        return http::Response::Text(200, std::move(out), "application/json");
      },
      reward);

  http::RouteOptions stats;
  stats.scope = "bandit:read";
  stats.blocking = true;
  stats.openapi = {
      {"summary", "Statistics per arm"},
      {"operationId", "experimentStats"},
      {"tags", {"bandit"}},
      {"parameters", {NameParameter()}},
      {"responses",
       {{"200", http::JsonResponseSpec("Per-arm pulls, rewards, posterior mean, 95 % interval "
                                       "and probability of being best; regret estimate.",
                                       StatsSchema())},
        {"404", Errors()["404"]}}}};
  router.Get(
      "/v1/experiments/{name}/stats",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(ExperimentStats s, service.Stats(request.Param("name")));
        return http::Response::Json(200, StatsJson(s));
      },
      stats);

  if (compat_experiment.empty()) {
    return;
  }
  // The original bandit server's surface, on one configured experiment: GET /arms pulls,
  // POST /arms rewards, GET /arms/stats reports.
  http::RouteOptions compat_pull;
  // A GET that records a pull: a change, so bandit:write like POST .../pulls.
  compat_pull.scope = "bandit:write";
  compat_pull.blocking = answers_wait_for_msync;
  compat_pull.openapi = {
      {"summary", "Original server: choose an arm of the default experiment"},
      {"operationId", "compatPull"},
      {"tags", {"bandit-compat"}},
      {"responses",
       {{"200", http::JsonResponseSpec("{\"arm\", \"pullId\"}")}, {"404", Errors()["404"]}}}};
  router.Get(
      "/arms",
      [&service, compat_experiment, pulls_total](const http::Request&) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(PullResult r, service.Pull(compat_experiment));
        pulls_total->Inc();
        return http::Response::Json(200, {{"arm", r.arm}, {"pullId", r.pull_id}});
      },
      compat_pull);
  http::RouteOptions compat_reward;
  compat_reward.scope = "bandit:write";
  compat_reward.blocking = answers_wait_for_msync;
  compat_reward.openapi = {
      {"summary", "Original server: report a reward"},
      {"description",
       "{\"arm\", \"reward\", \"pullId\"}: the reward is credited to the pull's arm; an \"arm\" "
       "that disagrees with the pull is refused (400) instead of being credited blindly."},
      {"operationId", "compatReward"},
      {"tags", {"bandit-compat"}},
      {"responses", {{"200", http::JsonResponseSpec("Credited.")}, {"400", Errors()["400"]}}}};
  router.Post(
      "/arms",
      [&service, compat_experiment,
       rewards_total](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, ObjectBody(request, false));
        const auto id = body.find("pullId");
        if (id == body.end() || !id->is_string()) {
          return http::InvalidField("#/pullId",
                                    "pullId is required: rewards are credited to the arm that was "
                                    "served for a pull (GET /arms returns it)");
        }
        EVO_ASSIGN_OR_RETURN(auto item, ParseReward(body, "#"));
        std::string expected;
        if (const auto arm = body.find("arm"); arm != body.end() && !arm->is_null()) {
          if (!arm->is_string()) {
            return http::InvalidField("#/arm", "arm must be a string");
          }
          expected = arm->get<std::string>();
        }
        EVO_ASSIGN_OR_RETURN(std::string arm,
                             service.Reward(compat_experiment, item.first, item.second, expected));
        rewards_total->Inc();
        return http::Response::Json(200, {{"arm", arm}, {"reward", item.second}});
      },
      compat_reward);
  http::RouteOptions compat_stats;
  compat_stats.scope = "bandit:read";
  compat_stats.blocking = true;
  compat_stats.openapi = {
      {"summary", "Original server: statistics of the default experiment"},
      {"operationId", "compatStats"},
      {"tags", {"bandit-compat"}},
      {"responses",
       {{"200", http::JsonResponseSpec("Per-arm statistics.")}, {"404", Errors()["404"]}}}};
  router.Get(
      "/arms/stats",
      [&service, compat_experiment](const http::Request&) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(ExperimentStats s, service.Stats(compat_experiment));
        return http::Response::Json(200, StatsJson(s));
      },
      compat_stats);
}

}  // namespace evo::bandit
