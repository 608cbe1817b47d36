// GenerationJob: engine outputs → OpenAI JSON bodies or SSE chunks.
#include "server/openai_job.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api_error.h"

namespace longview {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// JSON has no infinities; a -inf logprob is reported as vLLM does.
double FiniteLogprob(float lp) { return std::isfinite(lp) ? lp : -9999.0; }

json Bytes(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

}  // namespace

std::string SseEvent(const json& chunk) { return "data: " + Dump(chunk) + "\n\n"; }

GenerationJob::GenerationJob(JobSpec spec, std::vector<std::shared_ptr<RequestStream>> streams,
                             std::shared_ptr<HttpResponder> responder, const Tokenizer* tokenizer)
    : spec_(std::move(spec)), responder_(std::move(responder)), tokenizer_(tokenizer) {
  for (auto& s : streams) streams_.push_back(StreamState{std::move(s)});
  choices_.resize(streams_.size() * static_cast<size_t>(spec_.n));
}

GenerationJob::~GenerationJob() { CancelAll(); }

void GenerationJob::CancelAll() {
  for (StreamState& s : streams_) {
    if (!s.done && s.stream) s.stream->Cancel();
  }
}

json GenerationJob::ChunkBase() const {
  return json{
      {"id", spec_.id},
      {"object", spec_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
      {"created", spec_.created},
      {"model", spec_.model}};
}

void GenerationJob::SendEvent(const json& chunk) { responder_->Write(SseEvent(chunk)); }

void GenerationJob::Begin() {
  if (!spec_.stream) return;
  responder_->StartStream(200, "text/event-stream", {"Cache-Control: no-cache"});
  if (spec_.kind != ApiKind::kChat) return;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json chunk = ChunkBase();
    chunk["choices"] = json::array({json{{"index", i},
                                         {"delta", {{"role", "assistant"}, {"content", ""}}},
                                         {"logprobs", nullptr},
                                         {"finish_reason", nullptr}}});
    SendEvent(chunk);
  }
}

json GenerationJob::Usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (const StreamState& s : streams_) {
    prompt += s.prompt_tokens;
    completion += s.completion_tokens;
    cached += s.cached_tokens;
  }
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string GenerationJob::TokenText(int32_t id) const {
  return spec_.tokens_as_ids ? absl::StrCat("token_id:", id) : tokenizer_->TokenBytes(id);
}

json GenerationJob::LogprobsJson(const Choice& c, size_t from, size_t to) const {
  if (spec_.logprobs < 0) return nullptr;
  to = std::min(to, c.logprobs.size());
  if (spec_.kind == ApiKind::kChat) {
    json content = json::array();
    for (size_t i = from; i < to; ++i) {
      std::string tok = TokenText(c.logprobs[i].token);
      json top = json::array();
      if (i < c.top_logprobs.size()) {
        for (const TokenLogprob& t : c.top_logprobs[i]) {
          std::string s = TokenText(t.token);
          top.push_back({{"token", s}, {"logprob", FiniteLogprob(t.logprob)}, {"bytes", Bytes(s)}});
        }
      }
      content.push_back({{"token", tok},
                         {"logprob", FiniteLogprob(c.logprobs[i].logprob)},
                         {"bytes", Bytes(tok)},
                         {"top_logprobs", top}});
    }
    return json{{"content", content}};
  }
  json tokens = json::array(), token_logprobs = json::array(), tops = json::array(),
       offsets = json::array();
  for (size_t i = from; i < to; ++i) {
    std::string tok = TokenText(c.logprobs[i].token);
    tokens.push_back(tok);
    token_logprobs.push_back(FiniteLogprob(c.logprobs[i].logprob));
    json top = json::object();
    top[tok] = FiniteLogprob(c.logprobs[i].logprob);  // the sampled token is always listed
    if (i < c.top_logprobs.size()) {
      for (const TokenLogprob& t : c.top_logprobs[i]) {
        top[TokenText(t.token)] = FiniteLogprob(t.logprob);
      }
    }
    tops.push_back(top);
    offsets.push_back(i < c.offsets.size() ? c.offsets[i] : 0);
  }
  return json{{"tokens", tokens},
              {"token_logprobs", token_logprobs},
              {"top_logprobs", tops},
              {"text_offset", offsets}};
}

bool GenerationJob::Apply(size_t stream_index, const RequestOutput& out) {
  if (!out.status.ok()) {
    Fail(out.status);
    return false;
  }
  StreamState& s = streams_[stream_index];
  s.prompt_tokens = out.prompt_tokens;
  s.completion_tokens = out.completion_tokens;
  s.cached_tokens = out.cached_prompt_tokens;
  const size_t n = static_cast<size_t>(spec_.n);
  for (const SequenceDelta& d : out.deltas) {
    if (d.index < 0 || static_cast<size_t>(d.index) >= n) continue;
    size_t idx = stream_index * n + static_cast<size_t>(d.index);
    Choice& c = choices_[idx];
    if (c.finished) continue;
    size_t from = c.tokens.size();
    c.text += d.text;
    for (int32_t t : d.token_ids) {
      c.tokens.push_back(t);
      c.offsets.push_back(c.next_offset);
      c.next_offset += tokenizer_->TokenBytes(t).size();
    }
    c.logprobs.insert(c.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
    c.top_logprobs.insert(c.top_logprobs.end(), d.top_logprobs.begin(), d.top_logprobs.end());
    if (d.finished) {
      c.finished = true;
      c.reason = d.finish_reason;
    }
    bool has_logprobs = spec_.logprobs >= 0 && !d.token_ids.empty();
    if (!spec_.stream || (d.text.empty() && !d.finished && !has_logprobs)) continue;
    json choice = {
        {"index", idx},
        {"logprobs", LogprobsJson(c, from, c.tokens.size())},
        {"finish_reason", d.finished ? json(FinishReasonName(d.finish_reason)) : json()}};
    if (spec_.kind == ApiKind::kChat) {
      choice["delta"] = d.text.empty() && d.finished ? json::object() : json{{"content", d.text}};
    } else {
      choice["text"] = d.text;
    }
    json chunk = ChunkBase();
    chunk["choices"] = json::array({choice});
    SendEvent(chunk);
  }
  if (out.finished) {
    s.done = true;
    // Choices the engine closed without a final delta still get a finish reason.
    for (size_t i = stream_index * n; i < (stream_index + 1) * n; ++i) {
      if (choices_[i].finished) continue;
      choices_[i].finished = true;
      if (!spec_.stream) continue;
      json choice = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", "length"}};
      if (spec_.kind == ApiKind::kChat) {
        choice["delta"] = json::object();
      } else {
        choice["text"] = "";
      }
      json chunk = ChunkBase();
      chunk["choices"] = json::array({choice});
      SendEvent(chunk);
    }
  }
  return true;
}

void GenerationJob::Fail(const absl::Status& status) {
  CancelAll();
  done_ = true;
  if (spec_.stream) {
    responder_->Write("data: " + ErrorJson(status) + "\n\n");
    responder_->Write("data: [DONE]\n\n");
    responder_->EndStream();
  } else {
    responder_->Respond(HttpStatusFor(status), "application/json", ErrorJson(status));
  }
}

void GenerationJob::Finish() {
  done_ = true;
  if (spec_.on_success) {
    std::vector<std::vector<int32_t>> tokens;
    for (const Choice& c : choices_) tokens.push_back(c.tokens);
    spec_.on_success(tokens);
  }
  if (spec_.stream) {
    if (spec_.include_usage) {
      json chunk = ChunkBase();
      chunk["choices"] = json::array();
      chunk["usage"] = Usage();
      SendEvent(chunk);
    }
    responder_->Write("data: [DONE]\n\n");
    responder_->EndStream();
    return;
  }
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json choice = {{"index", i},
                   {"logprobs", LogprobsJson(c, 0, c.tokens.size())},
                   {"finish_reason", FinishReasonName(c.reason)}};
    if (spec_.kind == ApiKind::kChat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choices.push_back(choice);
  }
  json body = {{"id", spec_.id},
               {"object", spec_.kind == ApiKind::kChat ? "chat.completion" : "text_completion"},
               {"created", spec_.created},
               {"model", spec_.model},
               {"choices", choices},
               {"usage", Usage()}};
  responder_->Respond(200, "application/json", Dump(body));
}

PollResult GenerationJob::Poll(std::chrono::milliseconds wait) {
  if (done_) return PollResult::kDone;
  if (responder_->closed()) {
    // The client is gone: stop generating; the engine frees the blocks at its next step.
    CancelAll();
    done_ = true;
    return PollResult::kDone;
  }
  bool progress = false;
  for (size_t i = 0; i < streams_.size(); ++i) {
    StreamState& s = streams_[i];
    if (s.done) continue;
    RequestOutput out;
    bool timed_out = false;
    bool got = s.stream->NextFor(&out, wait, &timed_out);
    wait = std::chrono::milliseconds(0);  // block at most once per poll
    if (!got) {
      if (timed_out) continue;
      // Closed and drained without a final output: treat as finished.
      RequestOutput last;
      last.finished = true;
      last.prompt_tokens = s.prompt_tokens;
      last.completion_tokens = s.completion_tokens;
      last.cached_prompt_tokens = s.cached_tokens;
      Apply(i, last);
      progress = true;
      continue;
    }
    progress = true;
    if (!Apply(i, out)) return PollResult::kDone;
  }
  if (std::all_of(streams_.begin(), streams_.end(), [](const StreamState& s) { return s.done; })) {
    Finish();
    return PollResult::kDone;
  }
  return progress ? PollResult::kProgress : PollResult::kIdle;
}

void GenerationJob::Abandon() {
  if (done_) return;
  Fail(absl::UnavailableError("the server is shutting down"));
}

}  // namespace longview
