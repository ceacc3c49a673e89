#include "spam/cli.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/clock.hpp"

namespace evo::spam {
namespace {

using cli::ExitCodeFor;
using cli::Fail;
using cli::kExitFailure;
using cli::kExitUsage;

// The flags of every `evo spam` command (each command reads the ones it has).
struct Args {
  std::string directory;
  std::vector<std::string> files;
  std::string format = "text";
  bool activate = false;
  int folds = 10;
  int64_t version = 0;
};

// The service on the server's database; `db` is declared first so that it outlives the
// service.
struct Opened {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<Service> service;
};

StatusOr<Opened> OpenService(const CliDeps& deps) {
  EVO_ASSIGN_OR_RETURN(ServiceOptions options, deps.options());
  Opened opened;
  EVO_ASSIGN_OR_RETURN(opened.db, deps.open_database());
  EVO_ASSIGN_OR_RETURN(opened.service, Service::Open(*opened.db, options, RealClock()));
  return opened;
}

void PrintMetricsLine(const char* label, const nlohmann::json& m) {
  std::printf(
      "%-14s accuracy %.2f%%  spam recall %.2f%%  ham recall %.2f%%  precision %.2f%%  "
      "F1 %.4f  ROC AUC %.5f\n%-14s spam recall at ham recall 99.5%%: %.2f%%, at 99.9%%: "
      "%.2f%%  (false positives %d, false negatives %d, unsure %d)\n",
      label, 100 * m["accuracy"].get<double>(), 100 * m["spam_recall"].get<double>(),
      100 * m["ham_recall"].get<double>(), 100 * m["precision"].get<double>(),
      m["f1"].get<double>(), m["roc_auc"].get<double>(), "",
      100 * m["spam_recall_at_ham_99_5"].get<double>(),
      100 * m["spam_recall_at_ham_99_9"].get<double>(), m["false_positives"].get<int>(),
      m["false_negatives"].get<int>(), m["unsure"].get<int>());
}

int TrainCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto lock = deps.lock_data_dir();  // a running server trains through POST /v1/spam/models
  if (!lock.ok()) {
    return Fail(cli::kExitFailure, lock.status());
  }
  auto corpus = LoadCorpus(args.directory);
  if (!corpus.ok()) {
    return Fail(ExitCodeFor(corpus.status()), corpus.status());
  }
  auto opened = OpenService(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  TrainRequest request;
  request.messages = std::move(*corpus);
  request.activate = args.activate;
  auto info = opened->service->Train(request);
  if (!info.ok()) {
    return Fail(ExitCodeFor(info.status()), info.status());
  }
  if (args.format == "json") {
    std::printf("%s\n", ToJson(*info).dump(2).c_str());
    return 0;
  }
  std::printf(
      "model version %lld (%s), %lld messages (%lld spam, %lld ham), %lld features, "
      "trained in %.2f s%s\n",
      static_cast<long long>(info->version), info->family.c_str(),
      static_cast<long long>(info->messages), static_cast<long long>(info->spam),
      static_cast<long long>(info->ham), static_cast<long long>(info->features),
      info->train_seconds, info->active ? ", active" : " (not active: use --activate)");
  PrintMetricsLine("cross-valid.:", info->metrics["crossValidation"]);
  if (const auto skipped = info->metrics.find("skipped"); skipped != info->metrics.end()) {
    std::printf(
        "skipped %lld file(s) that are not messages, e.g. %s\n",
        static_cast<long long>((*skipped)["count"].get<int64_t>()),
        (*skipped)["files"].empty() ? "" : (*skipped)["files"][0].get<std::string>().c_str());
  }
  return 0;
}

// The bytes of a message file ("-" = stdin). Not through istreambuf_iterator: libstdc++
// throws from it when read() fails (a directory gives EISDIR), which would abort.
StatusOr<std::string> ReadMessageFile(const std::string& file) {
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::error_code ec;
  const auto type = std::filesystem::status(file, ec).type();
  if (type == std::filesystem::file_type::not_found) {
    return NotFoundError(file + ": cannot read: no such file");
  }
  if (ec) {
    return FailedPreconditionError(file + ": cannot read: " + ec.message());
  }
  if (type != std::filesystem::file_type::regular) {
    return InvalidArgumentError(file + ": cannot read: not a regular file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return FailedPreconditionError(file + ": cannot read");
  }
  text << in.rdbuf();  // an empty file inserts nothing: Classify then says the text is empty
  return text.str();
}

int ClassifyCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto opened = OpenService(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  int rc = 0;
  for (const std::string& file : args.files) {
    auto text = ReadMessageFile(file);
    if (!text.ok()) {
      std::fprintf(stderr, "evo: %s\n", std::string(text.status().message()).c_str());
      rc = kExitUsage;
      continue;
    }
    auto verdict = opened->service->Classify(*text);
    if (!verdict.ok()) {
      std::fprintf(stderr, "evo: %s: %s\n", file.c_str(),
                   std::string(verdict.status().message()).c_str());
      if (verdict.status().GetPayload(kPayloadReason) == "NO_MODEL") {
        return kExitFailure;
      }
      rc = kExitUsage;
      continue;
    }
    if (args.format == "json") {
      nlohmann::json tokens = nlohmann::json::array();
      for (const auto& t : verdict->top_tokens) {
        tokens.push_back({{"token", t.token}, {"weight", t.weight}});
      }
      std::printf("%s\n", nlohmann::json({{"file", file},
                                          {"label", verdict->spam ? "spam" : "ham"},
                                          {"probability", verdict->probability},
                                          {"unsure", verdict->unsure},
                                          {"modelVersion", verdict->version},
                                          {"topTokens", tokens}})
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
      continue;
    }
    std::string why;
    for (const auto& t : verdict->top_tokens) {
      why += (why.empty() ? "" : ", ") + t.token + (t.weight > 0 ? " +" : " -");
    }
    std::printf("%s\t%s\t%.4f%s\t%s\n", file.c_str(), verdict->spam ? "spam" : "ham",
                verdict->probability, verdict->unsure ? "\tunsure" : "", why.c_str());
  }
  return rc;
}

int EvalCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto options = deps.options();
  if (!options.ok()) {
    return Fail(kExitUsage, options.status());
  }
  if (args.folds < 0 || args.folds > 20 || args.folds == 1) {
    return Fail(kExitUsage, InvalidArgumentError("--folds: 0 (none) or 2..20"));
  }
  auto corpus = LoadCorpus(args.directory);
  if (!corpus.ok()) {
    return Fail(ExitCodeFor(corpus.status()), corpus.status());
  }
  TrainingOptions training;
  training.model.family = options->family;
  training.folds = options->calibration_folds;
  auto e = Evaluate(*corpus, training, options->unsure, args.folds);
  if (!e.ok()) {
    return Fail(ExitCodeFor(e.status()), e.status());
  }
  const nlohmann::json j = ToJson(*e);
  if (args.format == "json") {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf(
      "split: sha256(basename) first 8 hex digits mod 10 < 3 is test: %zu train, %zu "
      "test (%zu spam, %zu ham); model %s\n",
      e->train_messages, e->test.spam + e->test.ham, e->test.spam, e->test.ham,
      deps.model_name().c_str());
  PrintMetricsLine("test split:", j["test"]);
  if (args.folds > 0) {
    std::string folds;
    for (double a : e->fold_accuracy) {
      folds += fmt::format("{}{:.2f}", folds.empty() ? "" : " ", 100 * a);
    }
    std::printf("%d-fold CV:     mean accuracy %.2f%% (folds: %s)\n", args.folds,
                100 * e->cv_mean_accuracy, folds.c_str());
    PrintMetricsLine("CV pooled:", j["cv"]["pooled"]);
  }
  std::printf(
      "speed:         training %.3f s on %zu messages; classification %.0f msg/s (one "
      "thread, parse + tokenise + score)\n",
      e->train_seconds, e->train_messages, e->classify_msgs_per_sec);
  return 0;
}

int ModelsCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  auto opened = OpenService(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  auto models = opened->service->List();
  if (!models.ok()) {
    return Fail(kExitFailure, models.status());
  }
  if (args.format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : *models) {
      out.push_back(ToJson(m));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (models->empty()) {
    std::printf("no spam models yet: train one with `evo spam train DIR`\n");
    return 0;
  }
  std::printf("%-8s %-7s %-6s %-20s %9s %9s %9s %8s %9s\n", "VERSION", "ACTIVE", "FAMILY",
              "CREATED", "MESSAGES", "FEATURES", "FEEDBACK", "CV ACC", "TRAIN S");
  for (const auto& m : *models) {
    const double acc = m.metrics.contains("crossValidation")
                           ? m.metrics["crossValidation"].value("accuracy", 0.0)
                           : 0.0;
    std::printf("%-8lld %-7s %-6s %-20s %9lld %9lld %9lld %7.2f%% %9.2f\n",
                static_cast<long long>(m.version), m.active ? "*" : "", m.family.c_str(),
                m.created_at.substr(0, 19).c_str(), static_cast<long long>(m.messages),
                static_cast<long long>(m.features), static_cast<long long>(m.feedback), 100 * acc,
                m.train_seconds);
  }
  return 0;
}

int ActivateCommand(const CliDeps& deps, const Args& args) {
  cli::InitCommandLogging();
  if (args.version < 1) {
    return Fail(kExitUsage, InvalidArgumentError("version: must be a positive integer, got " +
                                                 std::to_string(args.version)));
  }
  auto lock = deps.lock_data_dir();  // a running server activates through its API
  if (!lock.ok()) {
    return Fail(cli::kExitFailure, lock.status());
  }
  auto opened = OpenService(deps);
  if (!opened.ok()) {
    return Fail(ExitCodeFor(opened.status()), opened.status());
  }
  if (Status s = opened->service->Activate(args.version); !s.ok()) {
    return Fail(ExitCodeFor(s), s);
  }
  std::printf("spam model version %lld is active\n", static_cast<long long>(args.version));
  return 0;
}

}  // namespace

void RegisterCli(CLI::App& app, cli::Commands& commands, CliDeps deps) {
  auto* spam = app.add_subcommand(
      "spam",
      "Spam classification: train, classify, evaluate and list models (data dir's "
      "evo.db)");
  spam->require_subcommand(1);
  const CliDeps& kept = commands.Keep(std::move(deps));
  Args& args = commands.Keep(Args{});

  auto* train = spam->add_subcommand(
      "train", "Train a new model version from DIR/ham and DIR/spam (one message per file)");
  train->add_option("dir", args.directory, "Corpus directory (Enron layout)")->required();
  train->add_flag("--activate", args.activate,
                  "Make the new version active (the first one always is)");
  cli::AddFormatOption(*train, args.format);
  commands.Add(train, [&kept, &args] { return TrainCommand(kept, args); });

  auto* classify = spam->add_subcommand(
      "classify",
      "Classify messages (raw RFC 822 or plain text files; - reads stdin) with "
      "the active model");
  classify->add_option("files", args.files, "Message files")->required();
  cli::AddFormatOption(*classify, args.format);
  commands.Add(classify, [&kept, &args] { return ClassifyCommand(kept, args); });

  auto* eval = spam->add_subcommand("eval",
                                    "Train on the fixed split of DIR and print test metrics and "
                                    "k-fold cross-validation (stores nothing)");
  eval->add_option("dir", args.directory, "Corpus directory (Enron layout)")->required();
  eval->add_option("--folds", args.folds, "Cross-validation folds (0 = none)")
      ->capture_default_str();
  cli::AddFormatOption(*eval, args.format);
  commands.Add(eval, [&kept, &args] { return EvalCommand(kept, args); });

  auto* models = spam->add_subcommand("models", "List model versions (* = active)");
  cli::AddFormatOption(*models, args.format);
  commands.Add(models, [&kept, &args] { return ModelsCommand(kept, args); });

  auto* activate =
      spam->add_subcommand("activate", "Make VERSION the active model (also to roll back)");
  activate->add_option("version", args.version, "Model version")->required();
  commands.Add(activate, [&kept, &args] { return ActivateCommand(kept, args); });
}

}  // namespace evo::spam
