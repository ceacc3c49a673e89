// Micro-benchmarks of the spam module on Enron-Spam Enron1 with the fixed split (eval.hpp):
// one classifier (default TrainingOptions) is trained once on the 3571 training messages, then
// the single-thread cost of each stage is measured on the 1601 test messages, round-robin.
// items_per_second is messages per second. bench/spam.sh runs this binary.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "spam/classifier.hpp"
#include "spam/eval.hpp"
#include "spam/message.hpp"
#include "spam/tokenizer.hpp"

#ifndef EVO_ENRON_DIR
#error "EVO_ENRON_DIR must name the unpacked Enron1 corpus (set in src/spam/CMakeLists.txt)"
#endif

namespace evo::spam {
namespace {

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "spam_benchmark: %s\n", s.ToString().c_str());
  std::abort();
}

struct Fixture {
  std::vector<LabeledText> train;
  std::vector<LabeledText> test;
  TrainingOptions options;
  std::unique_ptr<Classifier> classifier;
};

// Loaded and trained on first use, so that --benchmark_filter=Tokenize does not train.
const Fixture& Corpus() {
  static const Fixture* const fixture = [] {
    auto loaded = LoadCorpus(EVO_ENRON_DIR);
    if (!loaded.ok()) {
      Die(loaded.status());
    }
    auto* f = new Fixture();
    for (LabeledText& t : *loaded) {
      (IsTest(t.name) ? f->test : f->train).push_back(std::move(t));
    }
    return f;
  }();
  return *fixture;
}

const Classifier& Trained() {
  static const Classifier* const classifier = [] {
    const Fixture& f = Corpus();
    auto c = Classifier::Train(MakeExamples(f.train, f.options.tokenizer), f.options);
    if (!c.ok()) {
      Die(c.status());
    }
    return std::move(c).value().release();
  }();
  return *classifier;
}

// Parse + tokenise + score, the whole classification path.
void BM_Classify(benchmark::State& state) {
  const Classifier& c = Trained();
  const std::vector<LabeledText>& test = Corpus().test;
  size_t i = 0;
  for (auto _ : state) {
    const Verdict v = c.Classify(ParseMessage(test[i].text));
    benchmark::DoNotOptimize(v);
    i = i + 1 == test.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Classify);

// What the service does per request with explanations on (top_tokens = 5).
void BM_ClassifyWithExplain(benchmark::State& state) {
  const Classifier& c = Trained();
  const std::vector<LabeledText>& test = Corpus().test;
  size_t i = 0;
  for (auto _ : state) {
    const Message m = ParseMessage(test[i].text);
    std::vector<TokenWeight> tokens;
    const Verdict v = c.ClassifyExplained(m, 5, tokens);
    benchmark::DoNotOptimize(v);
    benchmark::DoNotOptimize(tokens);
    i = i + 1 == test.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClassifyWithExplain);

// Parse + tokenise alone: the part of BM_Classify that does not depend on the model.
void BM_Tokenize(benchmark::State& state) {
  const std::vector<LabeledText>& test = Corpus().test;
  const TokenizerOptions options;
  std::vector<uint64_t> features;
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    features.clear();
    ExtractFeatures(ParseMessage(test[i].text), options, features);
    benchmark::DoNotOptimize(features.data());
    bytes += static_cast<int64_t>(test[i].text.size());
    i = i + 1 == test.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_Tokenize);

// One ~1 KiB message, classified over and over (the size bench/spam.sh posts over HTTP).
void BM_ClassifyOneKB(benchmark::State& state) {
  const Classifier& c = Trained();
  std::string text = "Subject: your account statement and the meeting schedule\n";
  const std::vector<LabeledText>& test = Corpus().test;
  for (size_t i = 0; text.size() < 1024; ++i) {
    const Message m = ParseMessage(test[i % test.size()].text);
    text += m.body.substr(0, 1024 - text.size());
  }
  for (auto _ : state) {
    const Verdict v = c.Classify(ParseMessage(text));
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
  state.counters["message_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_ClassifyOneKB);

// A full training on the training split: tokenise, 5 calibration folds and the final model.
void BM_Train(benchmark::State& state) {
  const Fixture& f = Corpus();
  for (auto _ : state) {
    auto c = Classifier::Train(MakeExamples(f.train, f.options.tokenizer), f.options);
    if (!c.ok()) {
      state.SkipWithError(c.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(f.train.size()));
  state.counters["messages"] = static_cast<double>(f.train.size());
}
BENCHMARK(BM_Train)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace evo::spam
