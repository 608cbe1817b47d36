// `longview tokenize`: the model's own tokenizer as a line-oriented coprocess, so that tools
// (tools/eval/run_eval.py) count and cut text exactly as the engine will tokenize it, whatever
// the model ships (sentencepiece, tokenizer.json, a GGUF's metadata). Weights are not loaded.
//
//   longview tokenize --model M < requests.jsonl
//     {"text": "Hello", "add_special": true}   ->  {"ids": [1, 15043]}
//     {"ids": [15043]}                          ->  {"text": "Hello"}
//     anything else                             ->  {"error": "line 3: ..."}
// One answer line per request line, flushed at once; an error answers that line and the
// process goes on.
#pragma once

#include <iosfwd>
#include <string>

#include "engine/text/tokenizer.h"

namespace longview {

// Answers one request line (without its newline) with one JSON line (without a newline).
std::string AnswerTokenizeLine(const Tokenizer& tok, const std::string& line, int64_t line_no);

// Reads requests from `in` until its end, answering each on `out`. Returns the exit code:
// 0, or 1 when the model cannot be loaded (the message goes to stderr).
int RunTokenize(const std::string& model, std::istream& in, std::ostream& out);

}  // namespace longview
