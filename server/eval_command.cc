#include "server/eval_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

#include "nlohmann/json.hpp"
#include "server/runner_factory.h"

namespace longview {

int RunEval(const EvalArgs& a) {
  EvalSettings base = a.settings;
  absl::StatusOr<Attention> attention = ParseAttention(a.attention, "attention.");
  if (!attention.ok()) {
    std::cerr << "error: " << attention.status().message() << "\n";
    return 1;
  }
  base.attention = *attention;
  if (absl::Status s = ValidateEvalSettings(base); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  auto lm = LoadedModel::Load(a.model);
  if (!lm.ok()) {
    std::cerr << "error: cannot load model " << a.model << ": " << lm.status().message() << "\n";
    return 1;
  }
  if (a.device != "cpu") {
    absl::StatusOr<BackendChoice> backend =
        CreateBackend(**lm, {.device = a.device,
                             .page_size = base.page_size,
                             .max_num_batched_tokens = std::max<int64_t>(2048, 2 * base.chunk),
                             .max_num_seqs = 8,
                             .fp16 = a.dtype == "fp16"});
    if (!backend.ok()) {
      std::cerr << "error: " << backend.status().message() << "\n";
      return 1;
    }
    std::cerr << "eval: device " << backend->device << ", " << backend->num_kv_pages
              << " KV pages\n";
    base.runner = backend->runner;
  }
  std::ifstream in(a.tasks);
  if (!in) {
    std::cerr << "error: cannot open tasks file " << a.tasks << "\n";
    return 1;
  }
  std::ofstream out(a.out);
  if (!out) {
    std::cerr << "error: cannot write " << a.out << "\n";
    return 1;
  }
  std::string line;
  int64_t line_no = 0, done = 0, failed = 0;
  // A task the engine refuses (e.g. longer than the context) is recorded with its error and
  // counted; the others still run.
  auto report_error = [&](const absl::Status& s) {
    std::cerr << "error: " << a.tasks << ":" << line_no << ": " << s.message() << "\n";
    ++failed;
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    if (a.limit > 0 && done >= a.limit) break;
    nlohmann::json task = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (task.is_discarded() || !task.is_object()) {
      std::cerr << "error: " << a.tasks << ":" << line_no << ": not a JSON object\n";
      return 1;
    }
    nlohmann::json result = task;
    KvPolicySpec task_policy;  // as the task ran (its budget resolved)
    const auto t0 = std::chrono::steady_clock::now();
    if (task.contains("text") && task["text"].is_string()) {
      // Optional per task: "bucket" (tokens per position bucket) and "compare_dense" (false:
      // no dense pass; nll_dense and kl_vs_dense are then left out).
      EvalSettings settings = base;
      if (task.contains("bucket") && task["bucket"].is_number_integer()) {
        settings.bucket = task["bucket"].get<int64_t>();
      }
      if (task.contains("compare_dense") && task["compare_dense"].is_boolean()) {
        settings.compare_dense = task["compare_dense"].get<bool>();
      }
      auto r = MeasurePerplexity(**lm, task["text"].get<std::string>(), settings);
      result.erase("text");
      if (!r.ok()) {
        report_error(r.status());
        result["error"] = std::string(r.status().message());
      } else {
        result["tokens"] = r->tokens;
        result["nll"] = r->nll;
        result["perplexity"] = r->Perplexity();
        task_policy = r->kv_policy;
        if (r->has_dense) {
          result["nll_dense"] = r->nll_dense;
          result["kl_vs_dense"] = r->kl_vs_dense;
        }
        if (!r->buckets.empty()) {
          nlohmann::json buckets = nlohmann::json::array();
          for (const PositionBucket& b : r->buckets) {
            nlohmann::json j = {{"start", b.start},         {"end", b.end},
                                {"tokens", b.tokens},       {"nll", b.nll},
                                {"mean_nll", b.MeanNll()}, {"perplexity", b.Perplexity()}};
            if (r->has_dense) {
              j["mean_nll_dense"] = b.MeanNllDense();
              j["perplexity_dense"] = std::exp(b.MeanNllDense());
              j["kl_vs_dense"] = b.MeanKl();
            }
            buckets.push_back(std::move(j));
          }
          result["buckets"] = std::move(buckets);
        }
      }
    } else if (task.contains("prompt") && task["prompt"].is_string() && task.contains("answer") &&
               task["answer"].is_string()) {
      auto r = AnswerTask(**lm, task["prompt"].get<std::string>(),
                          task["answer"].get<std::string>(), base);
      result.erase("prompt");
      if (!r.ok()) {
        report_error(r.status());
        result["error"] = std::string(r.status().message());
        result["correct"] = false;
      } else {
        result["output"] = r->output;
        result["correct"] = r->correct;
        result["prompt_tokens"] = r->prompt_tokens;
        task_policy = r->kv_policy;
      }
    } else {
      std::cerr << "error: " << a.tasks << ":" << line_no
                << ": a task needs \"text\" (perplexity) or \"prompt\" and \"answer\"\n";
      return 1;
    }
    result["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result["attention_mode"] = std::string(base.attention->name());
    for (const auto& [name, value] : base.attention->Params()) result[name] = value;
    result["kv_policy"] = base.kv.policy.empty() ? std::string("none") : base.kv.policy;
    if (base.kv_budget_fraction > 0) result["kv_budget_fraction"] = base.kv_budget_fraction;
    for (const auto& [name, value] : KvPolicyParams(task_policy)) result["kv_" + name] = value;
    out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.flush();
    ++done;
  }
  std::cerr << "evaluated " << done << " tasks (" << failed << " failed) -> " << a.out << "\n";
  return 0;
}

}  // namespace longview
