// The `longview` command.
//
//   longview generate [--model DIR] --prompt TEXT [--max-tokens N] [--temperature T] [--seed S]
//   longview serve [--model DIR] [--host H] [--port P] [--api-key KEY] ...   (serve_command.h)
//   longview eval --tasks FILE --out FILE ...                                 (eval_command.h)
//   longview tokenize [--model M]  (JSONL on stdin and stdout)                  (tokenize_command.h)
//
// `--model` defaults to the embedded model (models/longview-tiny, see its MODEL_CARD.md):
// $LONGVIEW_MODEL, else ../models/longview-tiny beside the binary (a relocatable bundle), else
// the source tree's models/longview-tiny.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "common/version.h"
#include "engine/attention/hip.h"
#include "scheduler/generator.h"
#include "kernels/cpu/ops.h"
#include "server/eval_command.h"
#include "server/tokenize_command.h"
#include "server/serve_command.h"

namespace longview {
namespace {

constexpr char kEmbeddedModel[] = "longview-tiny";

std::string DefaultModelDir() {
  if (const char* env = std::getenv("LONGVIEW_MODEL"); env && *env) return env;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto bundled = exe.parent_path().parent_path() / "models" / kEmbeddedModel;
    if (std::filesystem::exists(bundled / "config.json")) return bundled.string();
  }
  return std::string(LONGVIEW_SOURCE_MODELS_DIR) + "/" + kEmbeddedModel;
}

struct GenerateArgs {
  std::string model;
  std::string prompt;
  int64_t max_tokens = 64;
  double temperature = 1.0;
  std::optional<uint64_t> seed;
  int32_t top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int64_t page_size = 16;
  int threads = 0;
  bool print_ids = false;
};

int RunGenerate(const GenerateArgs& a) {
  if (a.threads > 0) cpu::SetNumThreads(a.threads);
  auto lm = LoadedModel::Load(a.model);
  if (!lm.ok()) {
    std::cerr << "error: cannot load model " << a.model << ": " << lm.status().message() << "\n";
    return 1;
  }
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling.temperature = a.temperature;
  opt.sampling.seed = a.seed;
  opt.sampling.top_k = a.top_k;
  opt.sampling.top_p = a.top_p;
  opt.sampling.min_p = a.min_p;
  opt.sampling.repetition_penalty = a.repetition_penalty;
  opt.sampling.presence_penalty = a.presence_penalty;
  opt.sampling.frequency_penalty = a.frequency_penalty;
  opt.stop = a.stop;
  opt.ignore_eos = a.ignore_eos;
  opt.page_size = a.page_size;
  auto result = Generate(**lm, a.prompt, opt, [](std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  });
  if (!result.ok()) {
    std::cerr << "\nerror: " << result.status().message() << "\n";
    return 1;
  }
  std::fputc('\n', stdout);
  if (a.print_ids) {
    std::cerr << "output_ids:";
    for (int32_t t : result->output_tokens) std::cerr << ' ' << t;
    std::cerr << "\n";
  }
  std::cerr << "[" << result->prompt_tokens.size() << " prompt tokens, "
            << result->output_tokens.size() << " generated, finish: "
            << FinishReasonName(result->finish) << "]\n";
  return 0;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) {
  using longview::GenerateArgs;
  CLI::App app{"longview: an LLM inference server for long contexts"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("longview ") + longview::kVersion);

  GenerateArgs g;
  g.model = longview::DefaultModelDir();
  auto* gen = app.add_subcommand("generate", "Generate a continuation of a prompt, streamed");
  gen->add_option("--model", g.model, "Hugging Face model folder")->capture_default_str();
  gen->add_option("--prompt", g.prompt, "Prompt text")->required();
  gen->add_option("--max-tokens", g.max_tokens, "Tokens to generate at most")->capture_default_str();
  gen->add_option("--temperature", g.temperature, "0 = greedy")->capture_default_str();
  gen->add_option("--seed", g.seed, "RNG seed for reproducible sampling");
  gen->add_option("--top-k", g.top_k, "Keep the k most likely tokens (0 = off)");
  gen->add_option("--top-p", g.top_p, "Nucleus sampling threshold (1 = off)");
  gen->add_option("--min-p", g.min_p, "Drop tokens below min_p × the top probability");
  gen->add_option("--repetition-penalty", g.repetition_penalty, "1 = off");
  gen->add_option("--presence-penalty", g.presence_penalty, "[-2, 2]");
  gen->add_option("--frequency-penalty", g.frequency_penalty, "[-2, 2]");
  gen->add_option("--stop", g.stop, "Stop string (repeatable)");
  gen->add_flag("--ignore-eos", g.ignore_eos, "Keep generating past the end-of-sequence token");
  gen->add_option("--page-size", g.page_size, "KV page size in tokens")->capture_default_str();
  gen->add_option("--threads", g.threads, "CPU threads (0 = all cores)");
  gen->add_flag("--print-ids", g.print_ids, "Print the generated token ids to stderr");

  longview::EvalArgs e;
  e.model = g.model;
  int eval_threads = 0;
  auto* ev = app.add_subcommand("eval", "Run a JSONL file of evaluation tasks (tools/eval/)");
  ev->add_option("--model", e.model, "Hugging Face model folder")->capture_default_str();
  ev->add_option("--tasks", e.tasks, "JSONL tasks: {prompt, answer} or {text}")->required();
  ev->add_option("--out", e.out, "JSONL results")->required();
  e.attention.mode = "dense";
  int64_t eval_window = 0, eval_sinks = 0;
  ev->add_option("--attention-mode", e.attention.mode, "dense | sliding_window | hip")
      ->capture_default_str();
  auto* window_opt =
      ev->add_option("--window", eval_window, "sliding_window, hip: tokens attended");
  auto* sinks_opt =
      ev->add_option("--sinks", eval_sinks, "sliding_window, hip: attention sinks");
  int64_t eval_top_k = 0, eval_block_size = 0;
  std::string eval_stages;
  auto* top_k_opt = ev->add_option("--top-k", eval_top_k, "hip: tokens the last stage keeps");
  auto* block_opt =
      ev->add_option("--block-size", eval_block_size, "hip: prompt queries pruned together");
  ev->add_option("--hip-stages", eval_stages,
                 "hip: pruning stages as chunk:keep[:pool],... (e.g. 256:32768:4,32:8192:4,8:2048)");
  std::string eval_refresh, eval_dense_layers;
  int64_t eval_dense_top_k = 0;
  ev->add_option("--hip-refresh", eval_refresh,
                 "hip: decode steps between mask refreshes per stage (e.g. 32,16,8)");
  auto* dense_layers_opt = ev->add_option(
      "--dense-layers", eval_dense_layers, "hip: layers keeping --dense-top-k (e.g. 0,1,2,3; '' none)");
  auto* dense_top_k_opt =
      ev->add_option("--dense-top-k", eval_dense_top_k, "hip: the last stage's keep on them");
  longview::AddKvPolicyFlags(ev, &e.settings.kv);
  ev->add_option("--kv-budget-fraction", e.settings.kv_budget_fraction,
                 "KV budget as a fraction of each task's tokens (instead of --kv-budget)");
  ev->add_option("--page-size", e.settings.page_size, "KV page size")->capture_default_str();
  ev->add_option("--chunk", e.settings.chunk,
                 "Perplexity: tokens per prefill step (a KV policy evicts between steps)")
      ->capture_default_str();
  ev->add_option("--limit", e.limit, "Evaluate at most N tasks");
  ev->add_option("--threads", eval_threads, "CPU threads (0 = all cores)");
  ev->add_option("--device", e.device, "cpu | cuda | auto")->capture_default_str();
  ev->add_option("--dtype", e.dtype, "CUDA: bf16 | fp16")->capture_default_str();

  std::string tok_model = g.model;
  auto* tok = app.add_subcommand(
      "tokenize", "The model's tokenizer as a JSONL coprocess: {\"text\"} -> {\"ids\"}, "
                  "{\"ids\"} -> {\"text\"} (tools/eval/)");
  tok->add_option("--model", tok_model, "Model folder or .gguf file")->capture_default_str();

  longview::ServeArgs s;
  s.model = g.model;
  auto* serve = longview::AddServeCommand(app, &s);

  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return longview::RunServe(s);
  if (gen->parsed()) return longview::RunGenerate(g);
  if (tok->parsed()) return longview::RunTokenize(tok_model, std::cin, std::cout);
  if (ev->parsed()) {
    if (eval_threads > 0) longview::cpu::SetNumThreads(eval_threads);
    if (window_opt->count() > 0) e.attention.window = eval_window;
    if (sinks_opt->count() > 0) e.attention.sinks = eval_sinks;
    if (top_k_opt->count() > 0) e.attention.top_k = eval_top_k;
    if (block_opt->count() > 0) e.attention.block_size = eval_block_size;
    if (!eval_stages.empty()) {
      absl::StatusOr<std::vector<longview::HipStage>> stages =
          longview::ParseHipStages(eval_stages);
      if (!stages.ok()) {
        std::cerr << "--hip-stages: " << stages.status().message() << "\n";
        return 2;
      }
      e.attention.stages = *std::move(stages);
    }
    // A list flag given (even empty: --dense-layers '' is none) replaces the mode's default.
    auto int_list = [](const char* flag, const std::string& text,
                       std::optional<std::vector<int64_t>>* out) {
      absl::StatusOr<std::vector<int64_t>> values = longview::ParseIntList(text);
      if (!values.ok()) std::cerr << flag << ": " << values.status().message() << "\n";
      if (values.ok()) *out = *std::move(values);
      return values.ok();
    };
    if (!eval_refresh.empty() &&
        !int_list("--hip-refresh", eval_refresh, &e.attention.refresh)) {
      return 2;
    }
    if (dense_layers_opt->count() > 0 &&
        !int_list("--dense-layers", eval_dense_layers, &e.attention.dense_layers)) {
      return 2;
    }
    if (dense_top_k_opt->count() > 0) e.attention.dense_top_k = eval_dense_top_k;
    return longview::RunEval(e);
  }
  return 0;
}
