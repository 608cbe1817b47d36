// `longview eval`: runs a JSONL file of evaluation tasks through the engine and writes one JSON
// result per line. A task with "prompt" and "answer" is answered greedily and scored; a task with
// "text" gets perplexity (and, for a non-dense mode, KL against dense). Other fields pass through.
//
//   longview eval --model DIR --tasks passkey.jsonl --out results.jsonl
//       --attention-mode sliding_window --window 512
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/evaluator.h"

namespace longview {

struct EvalArgs {
  std::string model;
  std::string tasks;
  std::string out;
  AttentionRequest attention;  // parsed into settings.attention
  EvalSettings settings;
  int64_t limit = 0;  // 0 = all tasks
  std::string device = "cpu";  // cpu | cuda | auto (serve's backends)
  std::string dtype = "bf16";   // CUDA: bf16 | fp16
};

// Returns the process exit code; prints errors naming the file and line.
int RunEval(const EvalArgs& args);

}  // namespace longview
