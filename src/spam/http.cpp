// Request bodies are checked field by field (a wrong type is a 400 naming the field with a
// JSON pointer); unknown fields are ignored. Answers are built by hand on the classify path
// rather than through nlohmann::json: it is the hot route.
#include "spam/http.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "auth/principal.hpp"
#include "core/logging.hpp"
#include "core/utf8.hpp"
#include "spam/charset.hpp"

namespace evo::spam {
namespace {

using nlohmann::json;

constexpr size_t kMaxBatch = 1000;
constexpr size_t kMaxBatchBodyBytes = 32u << 20;
constexpr size_t kMaxTrainBodyBytes = 64u << 20;
// Classification bodies larger than this run on the blocking threads (an adversarial 1 MiB
// message takes a few hundred milliseconds).
constexpr size_t kBlockingClassifyBytes = 64u << 10;

bool IsWithin(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty() && std::next(r) == root.end()) {
      break;  // a trailing separator on the root
    }
    if (p == path.end() || *p != *r) {
      return false;
    }
  }
  return true;
}

// The canonical corpus directory a request names, when it lies below `root`. The answers do
// not tell whether a path outside the root exists: outside (by its text) is a 403; what is
// missing, or leaves the root through a symbolic link, is the same 404.
StatusOr<std::filesystem::path> CorpusDirectory(const std::string& requested,
                                                const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  if (root.empty()) {
    return PermissionDeniedError(
               "training from a server directory is off; start evo with --spam-corpus-root DIR "
               "to allow directories below DIR, or send the messages inline")
        .With(kPayloadReason, "DIRECTORY_TRAINING_OFF")
        .With(kPayloadPointer, "#/directory");
  }
  if (requested.empty() || requested.front() != '/') {
    return http::InvalidField("#/directory", "directory must be an absolute path");
  }
  const fs::path lexical = fs::path(requested).lexically_normal();
  if (!IsWithin(lexical, root)) {
    return PermissionDeniedError("directory must be below the corpus root " + root.string())
        .With(kPayloadReason, "OUTSIDE_CORPUS_ROOT")
        .With(kPayloadPointer, "#/directory");
  }
  std::error_code ec;
  const fs::path canonical = fs::canonical(lexical, ec);
  if (ec || !IsWithin(canonical, root) || !fs::is_directory(canonical, ec)) {
    return NotFoundError("no corpus directory " + lexical.string() + " below the corpus root")
        .With(kPayloadReason, "CORPUS_NOT_FOUND")
        .With(kPayloadPointer, "#/directory");
  }
  return canonical;
}

// A string field: absent -> nullopt (or an error when required).
StatusOr<std::optional<std::string>> StringField(const json& object, const std::string& name,
                                                 const std::string& pointer, bool required) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    if (required) {
      return http::InvalidField(pointer, name + " is required");
    }
    return std::optional<std::string>();
  }
  if (!it->is_string()) {
    return http::InvalidField(pointer, name + " must be a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

StatusOr<bool> BoolField(const json& object, const std::string& name, bool fallback) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_boolean()) {
    return http::InvalidField("#/" + name, name + " must be true or false");
  }
  return it->get<bool>();
}

StatusOr<bool> LabelField(const json& object, const std::string& pointer) {
  EVO_ASSIGN_OR_RETURN(auto label, StringField(object, "label", pointer, true));
  if (*label == "spam") {
    return true;
  }
  if (*label == "ham") {
    return false;
  }
  return http::InvalidField(pointer, "label must be \"spam\" or \"ham\"");
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  logging::AppendJsonEscaped(out, s);
  out.push_back('"');
}

// Tokens are cut at max_token_bytes, possibly inside a character: replace what is not valid
// UTF-8 so that the answer stays valid JSON.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (const size_t n = utf8::SequenceLength(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    }
  }
  return out;
}

void AppendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    v = 0;
  }
  fmt::format_to(std::back_inserter(out), "{:.6g}", v);
}

void AppendClassification(std::string& out, const Classification& c) {
  out += R"({"label":)";
  out += c.spam ? R"("spam")" : R"("ham")";
  out += R"(,"probability":)";
  AppendNumber(out, c.probability);
  out += R"(,"unsure":)";
  out += c.unsure ? "true" : "false";
  out += R"(,"modelVersion":)";
  out += std::to_string(c.version);
  out += R"(,"topTokens":[)";
  for (size_t i = 0; i < c.top_tokens.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    out += R"({"token":)";
    AppendJsonString(out, ValidUtf8(c.top_tokens[i].token));
    out += R"(,"weight":)";
    AppendNumber(out, c.top_tokens[i].weight);
    out += R"(,"direction":)";
    out += c.top_tokens[i].weight > 0 ? R"("spam"})" : R"("ham"})";
  }
  out += "]}";
}

StatusOr<int64_t> ParseVersion(std::string_view raw) {
  int64_t v = 0;
  bool ok = !raw.empty() && raw.size() <= 18;
  for (char c : raw) {
    ok = ok && c >= '0' && c <= '9';
    v = v * 10 + (c - '0');
  }
  if (!ok || v < 1) {
    return InvalidArgumentError(fmt::format("version must be a positive integer, got \"{}\"",
                                            ValidUtf8(raw.substr(0, 40))))
        .With(kPayloadReason, "INVALID_VERSION")
        .With(kPayloadPointer, "#/version");
  }
  return v;
}

// ---- OpenAPI ------------------------------------------------------------------------------

json ClassificationSchema() {
  return {{"type", "object"},
          {"required", {"label", "probability", "unsure", "modelVersion", "topTokens"}},
          {"properties",
           {{"label", {{"type", "string"}, {"enum", {"spam", "ham"}}}},
            {"probability",
             {{"type", "number"},
              {"minimum", 0},
              {"maximum", 1},
              {"description", "Calibrated probability that the message is spam."}}},
            {"unsure",
             {{"type", "boolean"},
              {"description", "The probability lies inside the configured unsure band."}}},
            {"modelVersion", {{"type", "integer"}}},
            {"topTokens",
             {{"type", "array"},
              {"description",
               "The tokens that pushed the decision hardest: towards spam first, then ham."},
              {"items",
               {{"type", "object"},
                {"properties",
                 {{"token", {{"type", "string"}}},
                  {"weight", {{"type", "number"}}},
                  {"direction", {{"type", "string"}, {"enum", {"spam", "ham"}}}}}}}}}}}}};
}

json MessageSchema(bool labelled) {
  json s = {{"type", "object"},
            {"required", labelled ? json{"text", "label"} : json{"text"}},
            {"properties",
             {{"text",
               {{"type", "string"},
                {"minLength", 1},
                {"description", "A raw RFC 822 message (MIME, HTML...) or plain text."}}},
              {"subject",
               {{"type", "string"},
                {"description", "Subject of a plain-text body (overrides a parsed one)."}}}}}};
  if (labelled) {
    s["properties"]["label"] = {{"type", "string"}, {"enum", {"spam", "ham"}}};
  }
  return s;
}

// {"results": [verdict | {"error": problem}...]}
json BatchResultsSchema() {
  const json item_error = {
      {"type", "object"},
      {"required", {"error"}},
      {"properties",
       {{"error",
         {{"$ref", "#/components/schemas/Problem"},
          {"description",
           "Why this message was not classified: the problem the single route would answer "
           "with (status, code, reason, detail, errors[].pointer to the message's text)."}}}}}};
  const json results = {{"type", "array"},
                        {"items", {{"oneOf", json::array({ClassificationSchema(), item_error})}}}};
  return {{"type", "object"}, {"required", {"results"}}, {"properties", {{"results", results}}}};
}

json ModelInfoSchema() {
  return {
      {"type", "object"},
      {"properties",
       {{"version", {{"type", "integer"}}},
        {"family", {{"type", "string"}, {"enum", {"linear", "nb"}}}},
        {"active", {{"type", "boolean"}}},
        {"createdAt", {{"type", "string"}, {"format", "date-time"}}},
        {"messages", {{"type", "integer"}}},
        {"spam", {{"type", "integer"}}},
        {"ham", {{"type", "integer"}}},
        {"features", {{"type", "integer"}}},
        {"feedback", {{"type", "integer"}}},
        {"threshold",
         {{"type", "number"},
          {"description", "Probability at and above which the label is spam."}}},
        {"trainSeconds", {{"type", "number"}}},
        {"metrics",
         {{"type", "object"},
          {"description", "Cross-validation metrics on the training messages (out-of-fold)."}}}}}};
}

json VersionParameter() {
  return {{"name", "version"},
          {"in", "path"},
          {"required", true},
          {"schema", {{"type", "integer"}, {"minimum", 1}}}};
}

const json& CommonErrors() {
  static const json errors = {
      {"400", http::ProblemResponseSpec(
                  "Malformed body, wrong field type, or bad text "
                  "(empty or only white space, too large); `errors[].pointer` names the field. "
                  "NUL and other control characters are data.")},
      {"415", http::ProblemResponseSpec("Body is not application/json.")}};
  return errors;
}

}  // namespace

void RegisterRoutes(http::Router& router, Service& service, metrics::Registry& registry,
                    const RouteSettings& settings) {
  auto& classified =
      registry.AddCounter("evo_spam_classified_total", "Messages classified, by label.", {"label"});
  auto* spam_count = &classified.Get({"spam"});
  auto* ham_count = &classified.Get({"ham"});
  auto& feedback_count = registry.AddCounter("evo_spam_feedback_total",
                                             "Feedback events learned or unlearned.", {"kind"});
  auto* learned = &feedback_count.Get({"learn"});
  auto* unlearned = &feedback_count.Get({"unlearn"});
  registry.AddGaugeCallback("evo_spam_active_model_version", "Active spam model version (0: none).",
                            [&service] { return static_cast<double>(service.active_version()); });

  http::RouteOptions classify;
  classify.scope = "spam:read";  // side-effect-free
  classify.blocking_above_body_bytes = kBlockingClassifyBytes;
  classify.openapi = {
      {"summary", "Classify one message"},
      {"operationId", "classifySpam"},
      {"tags", {"spam"}},
      {"requestBody", http::JsonRequestSpec(MessageSchema(false))},
      {"responses",
       {{"200", http::JsonResponseSpec("The verdict of the active model.", ClassificationSchema())},
        {"400", CommonErrors()["400"]},
        {"413", http::ProblemResponseSpec("Body larger than the server's limit (1 MiB).")},
        {"415", CommonErrors()["415"]}}}};
  router.Post(
      "/v1/spam/classify",
      [&service, spam_count, ham_count](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        EVO_ASSIGN_OR_RETURN(auto text, StringField(body, "text", "#/text", true));
        EVO_ASSIGN_OR_RETURN(auto subject, StringField(body, "subject", "#/subject", false));
        EVO_ASSIGN_OR_RETURN(Classification c,
                             service.Classify(*text, subject.value_or(std::string())));
        (c.spam ? spam_count : ham_count)->Inc();
        std::string out;
        out.reserve(512);
        AppendClassification(out, c);
        return http::Response::Text(200, std::move(out), "application/json");
      },
      classify);

  http::RouteOptions batch;
  batch.scope = "spam:read";
  batch.max_body_bytes = kMaxBatchBodyBytes;
  batch.blocking_above_body_bytes = kBlockingClassifyBytes;
  batch.openapi = {
      {"summary", "Classify up to 1000 messages"},
      {"description",
       "All messages are answered by the same model version, in request order. Each message is "
       "answered on its own: a message that cannot be classified (empty or only white space, "
       "reason EMPTY_TEXT; larger than 1 MiB, TEXT_TOO_LARGE) gets {\"error\": problem} in its "
       "slot, with errors[].pointer naming it, and the others are classified. A malformed "
       "request (not JSON, messages missing, not an array or more than 1000 items, an item "
       "that is not an object, a text that is not a string) and a missing model (NO_MODEL) "
       "are answered with 400 for the whole request."},
      {"operationId", "classifySpamBatch"},
      {"tags", {"spam"}},
      {"requestBody", http::JsonRequestSpec({{"type", "object"},
                                             {"required", {"messages"}},
                                             {"properties",
                                              {{"messages",
                                                {{"type", "array"},
                                                 {"minItems", 1},
                                                 {"maxItems", kMaxBatch},
                                                 {"items", MessageSchema(false)}}}}}})},
      {"responses",
       {{"200",
         http::JsonResponseSpec("One answer per message, same order: a verdict, or an error.",
                                BatchResultsSchema())},
        {"400", CommonErrors()["400"]},
        {"413", http::ProblemResponseSpec("Body larger than 32 MiB.")},
        {"415", CommonErrors()["415"]}}}};
  router.Post(
      "/v1/spam/classify:batch",
      [&service, spam_count, ham_count](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        const auto messages = body.find("messages");
        if (messages == body.end() || !messages->is_array() || messages->empty() ||
            messages->size() > kMaxBatch) {
          return http::InvalidField(
              "#/messages", fmt::format("messages must be an array of 1..{} objects", kMaxBatch));
        }
        std::vector<std::pair<std::string, std::string>> texts;
        texts.reserve(messages->size());
        for (size_t i = 0; i < messages->size(); ++i) {
          const json& m = (*messages)[i];
          const std::string pointer = fmt::format("#/messages/{}", i);
          if (!m.is_object()) {
            return http::InvalidField(pointer, "each message must be an object with a text");
          }
          EVO_ASSIGN_OR_RETURN(auto text, StringField(m, "text", pointer + "/text", true));
          EVO_ASSIGN_OR_RETURN(auto subject,
                               StringField(m, "subject", pointer + "/subject", false));
          texts.emplace_back(std::move(*text), subject.value_or(std::string()));
        }
        EVO_ASSIGN_OR_RETURN(auto results, service.ClassifyBatch(texts));
        std::string out = R"({"results":[)";
        for (size_t i = 0; i < results.size(); ++i) {
          if (i > 0) {
            out.push_back(',');
          }
          if (!results[i].ok()) {
            // The problem object the single route would answer with, in this item's slot.
            out += R"({"error":)";
            out += http::ProblemResponse(results[i].status()).body;
            out.push_back('}');
            continue;
          }
          AppendClassification(out, *results[i]);
          (results[i]->spam ? spam_count : ham_count)->Inc();
        }
        out += "]}";
        return http::Response::Text(200, std::move(out), "application/json");
      },
      batch);

  http::RouteOptions feedback;
  feedback.scope = "spam:write";
  feedback.blocking = true;  // updates the model and stores it
  json feedback_schema = MessageSchema(true);
  feedback_schema["properties"]["unlearn"] = {
      {"type", "boolean"},
      {"default", false},
      {"description",
       "Take back a message learned earlier with the same label (by feedback or training)."}};
  feedback.openapi = {
      {"summary", "Teach the active model one message (or take it back)"},
      {"description",
       "Only incremental models (family nb) learn from feedback; it is stored and replayed "
       "when the version is loaded again."},
      {"operationId", "spamFeedback"},
      {"tags", {"spam"}},
      {"requestBody", http::JsonRequestSpec(feedback_schema)},
      {"responses",
       {{"200", http::JsonResponseSpec("Learned.", {{"type", "object"},
                                                    {"properties",
                                                     {{"modelVersion", {{"type", "integer"}}},
                                                      {"label", {{"type", "string"}}},
                                                      {"unlearn", {{"type", "boolean"}}}}}})},
        {"400", http::ProblemResponseSpec(
                    "Bad body or text; the active model is not incremental "
                    "(MODEL_NOT_INCREMENTAL); nothing to unlearn (NOT_LEARNED); no model "
                    "(NO_MODEL).")},
        {"415", CommonErrors()["415"]}}}};
  router.Post(
      "/v1/spam/feedback",
      [&service, learned, unlearned](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        EVO_ASSIGN_OR_RETURN(auto text, StringField(body, "text", "#/text", true));
        EVO_ASSIGN_OR_RETURN(auto subject, StringField(body, "subject", "#/subject", false));
        EVO_ASSIGN_OR_RETURN(const bool spam, LabelField(body, "#/label"));
        EVO_ASSIGN_OR_RETURN(const bool unlearn, BoolField(body, "unlearn", false));
        EVO_ASSIGN_OR_RETURN(const int64_t version,
                             service.Feedback(*text, subject.value_or(""), spam, unlearn));
        (unlearn ? unlearned : learned)->Inc();
        return http::Response::Json(
            200,
            {{"modelVersion", version}, {"label", spam ? "spam" : "ham"}, {"unlearn", unlearn}});
      },
      feedback);

  http::RouteOptions train;
  // Inline messages need spam:write; a server directory also needs admin (checked in the
  // handler, since it depends on the body).
  train.scope = "spam:write";
  train.max_body_bytes = kMaxTrainBodyBytes;
  train.blocking = true;  // seconds of CPU for a large corpus
  train.openapi = {
      {"summary", "Train a new model version"},
      {"description",
       "From a server-side directory in the Enron layout (ham/ and spam/ holding one message "
       "per file) or from inline messages. The first version becomes active; later ones only "
       "with \"activate\": true. Classification keeps working meanwhile."},
      {"operationId", "trainSpamModel"},
      {"tags", {"spam"}},
      {"requestBody",
       http::JsonRequestSpec(
           {{"type", "object"},
            {"properties",
             {{"directory",
               {{"type", "string"},
                {"description", "Absolute path below the server's --spam-corpus-root."}}},
              {"messages", {{"type", "array"}, {"items", MessageSchema(true)}}},
              {"family", {{"type", "string"}, {"enum", {"linear", "nb"}}}},
              {"activate", {{"type", "boolean"}, {"default", false}}}}}})},
      {"responses",
       {{"201", http::JsonResponseSpec("The new version and its cross-validation metrics.",
                                       ModelInfoSchema())},
        {"400", CommonErrors()["400"]},
        {"403", http::ProblemResponseSpec(
                    "Directory training by a caller without the scope admin "
                    "(INSUFFICIENT_SCOPE), directory training is off (no --spam-corpus-root), "
                    "or the directory is not below the corpus root.")},
        {"404", http::ProblemResponseSpec(
                    "No such directory below the corpus root (or it leaves the root through a "
                    "symbolic link).")},
        {"413", http::ProblemResponseSpec("Body larger than 64 MiB.")},
        {"415", CommonErrors()["415"]}}}};
  router.Post(
      "/v1/spam/models",
      [&service, settings](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const json body, request.JsonObjectBody());
        TrainRequest tr;
        EVO_ASSIGN_OR_RETURN(tr.activate, BoolField(body, "activate", false));
        EVO_ASSIGN_OR_RETURN(auto family, StringField(body, "family", "#/family", false));
        if (family) {
          auto parsed = ParseFamily(*family);
          if (!parsed.ok()) {
            return http::InvalidField("#/family", std::string(parsed.status().message()));
          }
          tr.family = *parsed;
        }
        EVO_ASSIGN_OR_RETURN(auto directory, StringField(body, "directory", "#/directory", false));
        if (directory && !request.principal.Has(auth::kAdminScope)) {
          // Operator-only: reading the server's disk. Refused before the path is looked at.
          return PermissionDeniedError("training from a server directory needs the scope 'admin'")
              .With(kPayloadReason, "INSUFFICIENT_SCOPE");
        }
        if (directory) {  // a path: a NUL would cut it short when it reaches the file system
          EVO_RETURN_IF_ERROR(http::CheckIdentifier(*directory, "#/directory"));
        }
        const auto messages = body.find("messages");
        const bool has_messages = messages != body.end() && !messages->is_null();
        if (directory.has_value() == has_messages) {
          return http::InvalidField("#", "give exactly one of directory and messages");
        }
        if (directory) {
          EVO_ASSIGN_OR_RETURN(const std::filesystem::path dir,
                               CorpusDirectory(*directory, settings.corpus_root));
          auto corpus = LoadCorpus(dir, 16u << 20, size_t{1} << 32, /*follow_symlinks=*/false);
          if (!corpus.ok()) {
            Status s = corpus.status();
            s.SetPayload(kPayloadPointer, "#/directory");
            return s;
          }
          tr.messages = std::move(*corpus);
        } else {
          if (!messages->is_array() || messages->empty()) {
            return http::InvalidField("#/messages", "messages must be a non-empty array");
          }
          for (size_t i = 0; i < messages->size(); ++i) {
            const json& m = (*messages)[i];
            const std::string pointer = fmt::format("#/messages/{}", i);
            if (!m.is_object()) {
              return http::InvalidField(pointer,
                                        "each message must be an object with text and label");
            }
            EVO_ASSIGN_OR_RETURN(auto text, StringField(m, "text", pointer + "/text", true));
            EVO_ASSIGN_OR_RETURN(auto subject,
                                 StringField(m, "subject", pointer + "/subject", false));
            EVO_ASSIGN_OR_RETURN(const bool spam, LabelField(m, pointer + "/label"));
            std::string full = subject && !subject->empty()
                                   ? "Subject: " + *subject + "\n\n" + *text
                                   : std::move(*text);
            tr.messages.push_back({"", std::move(full), spam});
          }
        }
        EVO_ASSIGN_OR_RETURN(ModelInfo info, service.Train(tr));
        http::Response r = http::Response::Json(201, ToJson(info));
        r.headers.Set("Location", fmt::format("/v1/spam/models/{}", info.version));
        return r;
      },
      train);

  http::RouteOptions list;
  list.scope = "spam:read";
  list.openapi = {{"summary", "List model versions"},
                  {"operationId", "listSpamModels"},
                  {"tags", {"spam"}},
                  {"responses",
                   {{"200", http::JsonResponseSpec(
                                "Every version, oldest first.",
                                {{"type", "object"},
                                 {"properties",
                                  {{"models", {{"type", "array"}, {"items", ModelInfoSchema()}}},
                                   {"activeVersion", {{"type", "integer"}}}}}})}}}};
  router.Get(
      "/v1/spam/models",
      [&service](const http::Request&) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(std::vector<ModelInfo> models, service.List());
        json out = json::array();
        for (const ModelInfo& m : models) {
          out.push_back(ToJson(m));
        }
        return http::Response::Json(
            200, {{"models", std::move(out)}, {"activeVersion", service.active_version()}});
      },
      list);

  http::RouteOptions get;
  get.scope = "spam:read";
  get.openapi = {{"summary", "One model version with its metrics"},
                 {"operationId", "getSpamModel"},
                 {"tags", {"spam"}},
                 {"parameters", {VersionParameter()}},
                 {"responses",
                  {{"200", http::JsonResponseSpec("The version.", ModelInfoSchema())},
                   {"400", http::ProblemResponseSpec("Not a version number.")},
                   {"404", http::ProblemResponseSpec("No such version.")}}}};
  router.Get(
      "/v1/spam/models/{version}",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const int64_t version, ParseVersion(request.Param("version")));
        EVO_ASSIGN_OR_RETURN(ModelInfo info, service.Get(version));
        return http::Response::Json(200, ToJson(info));
      },
      get);

  http::RouteOptions activate;
  activate.scope = "spam:write";
  activate.blocking = true;  // loads the model from the store
  activate.openapi = {
      {"summary", "Make a version the active one (also to roll back)"},
      {"operationId", "activateSpamModel"},
      {"tags", {"spam"}},
      {"parameters", {VersionParameter()}},
      {"responses",
       {{"200", http::JsonResponseSpec("The version, now active.", ModelInfoSchema())},
        {"400", http::ProblemResponseSpec("Not a version number.")},
        {"404", http::ProblemResponseSpec("No such version.")}}}};
  router.Post(
      "/v1/spam/models/{version}:activate",
      [&service](const http::Request& request) -> StatusOr<http::Response> {
        EVO_ASSIGN_OR_RETURN(const int64_t version, ParseVersion(request.Param("version")));
        EVO_RETURN_IF_ERROR(service.Activate(version));
        EVO_ASSIGN_OR_RETURN(ModelInfo info, service.Get(version));
        return http::Response::Json(200, ToJson(info));
      },
      activate);
}

}  // namespace evo::spam
