#include "scheduler/engine_loop.h"

#include "engine/cpu/cpu_model_runner.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/scheduler/fake_runner.h"
#include "tests/support/attention.h"
#include "tests/support/golden_model.h"

namespace longview {
namespace {

using Ids = std::vector<int32_t>;

std::shared_ptr<const LoadedModel> Golden() { return test::GoldenLlama(); }

struct Collected {
  std::map<int32_t, Ids> tokens;
  std::map<int32_t, std::string> text;
  std::map<int32_t, FinishReason> finish;
  std::map<int32_t, std::vector<TokenLogprob>> logprobs;
  std::map<int32_t, std::vector<std::vector<TokenLogprob>>> top;
  absl::Status status;
  int64_t cached_prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int num_outputs = 0;
};

Collected Drain(RequestStream& stream) {
  Collected c;
  RequestOutput out;
  while (stream.Next(&out)) {
    ++c.num_outputs;
    for (SequenceDelta& d : out.deltas) {
      auto& t = c.tokens[d.index];
      t.insert(t.end(), d.token_ids.begin(), d.token_ids.end());
      c.text[d.index] += d.text;
      auto& lp = c.logprobs[d.index];
      lp.insert(lp.end(), d.logprobs.begin(), d.logprobs.end());
      for (auto& tl : d.top_logprobs) c.top[d.index].push_back(tl);
      if (d.finished) c.finish[d.index] = d.finish_reason;
    }
    c.status = out.status;
    c.cached_prompt_tokens = out.cached_prompt_tokens;
    c.completion_tokens = out.completion_tokens;
    if (out.finished) break;
  }
  return c;
}

using test::RandomPrompt;

GenerationRequest Request(const Ids& prompt, int64_t max_tokens, double temperature = 0) {
  GenerationRequest r;
  r.request_id = "req";
  r.prompt_tokens = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  return r;
}

// The golden model is random and repeats one token; penalties make its outputs varied, so that
// comparisons can tell sequences apart.
GenerationRequest Varied(GenerationRequest r) {
  r.sampling.repetition_penalty = 1.5;
  r.sampling.frequency_penalty = 1.5;
  return r;
}

int NumDistinct(const Ids& ids) {
  return static_cast<int>(std::set<int32_t>(ids.begin(), ids.end()).size());
}

GenerateResult Expected(const GenerationRequest& r) {
  GenerateOptions o;
  o.sampling = r.sampling;
  o.max_tokens = r.max_tokens;
  o.stop = r.stop;
  o.ignore_eos = r.ignore_eos;
  auto g = Generate(*Golden(), r.prompt_tokens, o);
  EXPECT_TRUE(g.ok()) << g.status();
  return *g;
}

std::shared_ptr<RequestStream> MustSubmit(EngineLoop& loop, GenerationRequest r) {
  auto s = loop.Submit(std::move(r));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : nullptr;
}

// Waits until every KV page is free again (blocks are freed by the loop thread).
bool AllPagesFree(const EngineLoop& loop) {
  for (int i = 0; i < 2000; ++i) {
    EngineMetrics m = loop.Snapshot();
    if (m.num_free_kv_pages == m.num_kv_pages && m.num_requests_running == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(EngineLoopTest, GreedyOutputEqualsGenerateAlone) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Varied(Request(Golden()->tokenizer->Encode("Once upon a time"), 40));
  GenerateResult want = Expected(r);
  auto s = MustSubmit(loop, r);
  ASSERT_TRUE(s);
  Collected got = Drain(*s);
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.tokens[0], want.output_tokens);
  EXPECT_EQ(got.text[0], want.text);
  EXPECT_EQ(got.finish[0], want.finish);
  EXPECT_TRUE(AllPagesFree(loop));
  loop.Stop();
}

// 32 concurrent requests of different lengths, with a budget that chunks prefills and a pool
// small enough to preempt: every greedy output is bit-identical to Generate alone.
void RunBatched(const EngineLoopOptions& options, bool expect_preemption) {
  EngineLoop loop(Golden(), options);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 32; ++i) {
    GenerationRequest r =
        Varied(Request(RandomPrompt(3 + (i * 37) % 90, 100 + i), 8 + (i * 13) % 40));
    r.ignore_eos = i % 2 == 0;
    reqs.push_back(r);
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (auto& r : reqs) streams.push_back(MustSubmit(loop, r));
  loop.Start();        // all 32 are in the queue at the first step
  int num_varied = 0;  // outputs that would reveal a mix-up between sequences
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(streams[i]);
    Collected got = Drain(*streams[i]);
    ASSERT_TRUE(got.status.ok()) << got.status;
    GenerateResult want = Expected(reqs[i]);
    EXPECT_EQ(got.tokens[0], want.output_tokens) << "request " << i;
    num_varied += NumDistinct(want.output_tokens) >= 4 ? 1 : 0;
    EXPECT_EQ(got.text[0], want.text) << "request " << i;
  }
  EXPECT_GE(num_varied, 20);
  EXPECT_TRUE(AllPagesFree(loop));
  EngineMetrics m = loop.Snapshot();
  if (expect_preemption) {
    EXPECT_GT(m.num_preemptions_total, 0);
  }
  EXPECT_EQ(m.time_to_first_token.count, 32);
  EXPECT_EQ(m.e2e_request_latency.count, 32);
  loop.Stop();
}

TEST(EngineLoopTest, GreedyOutputEqualsGenerateBatchedWith31Others) {
  RunBatched({.max_num_batched_tokens = 96, .page_size = 16, .num_kv_pages = 512}, false);
}

TEST(EngineLoopTest, GreedyOutputEqualsGenerateUnderPreemption) {
  RunBatched({.max_num_batched_tokens = 64, .page_size = 4, .num_kv_pages = 48}, true);
}

TEST(EngineLoopTest, CancellationFreesAllBlocks) {
  EngineLoopOptions o;
  o.num_kv_pages = 64;
  EngineLoop loop(Golden(), o);
  loop.Start();
  GenerationRequest r = Request(RandomPrompt(50, 3), 400);
  r.ignore_eos = true;
  auto s = MustSubmit(loop, r);
  ASSERT_TRUE(s);
  RequestOutput out;
  ASSERT_TRUE(s->Next(&out));
  EXPECT_LT(loop.Snapshot().num_free_kv_pages, 64);
  s->Cancel();
  Collected rest = Drain(*s);
  EXPECT_EQ(rest.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(AllPagesFree(loop));
  loop.Stop();
}

TEST(EngineLoopTest, SeededSamplingIsReproducibleAndMatchesGenerate) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Varied(Request(RandomPrompt(20, 9), 30, /*temperature=*/1.0));
  r.ignore_eos = true;
  r.sampling.seed = 1234;
  Collected a = Drain(*MustSubmit(loop, r));
  Collected b = Drain(*MustSubmit(loop, r));
  EXPECT_EQ(a.tokens[0], b.tokens[0]);
  EXPECT_EQ(a.tokens[0], Expected(r).output_tokens);
  r.sampling.seed = 99;
  Collected c = Drain(*MustSubmit(loop, r));
  EXPECT_NE(a.tokens[0], c.tokens[0]);
  // The second identical prompt was served from the prefix cache.
  EXPECT_GT(b.cached_prompt_tokens, 0);
  EXPECT_GT(loop.Snapshot().prefix_cache_hits, 0);
  loop.Stop();
}

// max_tokens 0 (a session's append): the prompt's KV is computed and cached, nothing sampled;
// a later prompt extending it takes its full pages from the cache and generates as if whole.
TEST(EngineLoopTest, APromptOnlyRequestCachesItsPagesAndSamplesNothing) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  const Ids history = RandomPrompt(70, 5);
  Collected warm = Drain(*MustSubmit(loop, Request(history, 0)));
  EXPECT_TRUE(warm.status.ok()) << warm.status;
  EXPECT_TRUE(warm.tokens[0].empty());
  EXPECT_EQ(warm.completion_tokens, 0);
  EXPECT_EQ(warm.finish[0], FinishReason::kLength);
  Ids more = history;
  for (int32_t t : RandomPrompt(9, 6)) more.push_back(t);
  GenerationRequest r = Varied(Request(more, 6));
  r.ignore_eos = true;
  Collected ask = Drain(*MustSubmit(loop, r));
  EXPECT_EQ(ask.cached_prompt_tokens, 64);  // the 4 full pages of 16 the warm-up filled
  EXPECT_EQ(ask.tokens[0], Expected(r).output_tokens);
  // Again: the warm-up itself reports the pages it found.
  Collected again = Drain(*MustSubmit(loop, Request(history, 0)));
  EXPECT_EQ(again.cached_prompt_tokens, 64);
  // Only one sequence can finish without sampling.
  GenerationRequest two = Request(history, 0);
  two.n = 2;
  absl::StatusOr<std::shared_ptr<RequestStream>> refused = loop.Submit(two);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("n must be 1 when max_tokens is 0"),
            std::string::npos)
      << refused.status();
  EXPECT_EQ(loop.Submit(Request(history, -1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  loop.Stop();
}

// Input embeddings: a prompt whose positions carry the model's own token embeddings (as rows,
// with kEmbeddingToken in the prompt) computes what the text does, token for token and logprob
// for logprob; the prefix cache tells rows apart by content, never by the placeholder.
TEST(EngineLoopTest, TheModelsOwnTokenEmbeddingsAsInputGiveTheTextsOutput) {
  const ModelConfig& cfg = Golden()->config;
  const int64_t hidden = cfg.hidden_size;
  const Ids text = RandomPrompt(41, 12);  // tokens 1..40 become rows
  auto rows_of = [&](const Ids& ids, int64_t from, int64_t to) {
    std::vector<float> rows;
    for (int64_t i = from; i < to; ++i) {
      const float* r = &Golden()->weights->embed_tokens.data[ids[i] * hidden];
      rows.insert(rows.end(), r, r + hidden);
    }
    return rows;
  };
  auto embedded = [&](const Ids& ids, std::vector<float> rows) {
    GenerationRequest r = Varied(Request(ids, 8));
    r.ignore_eos = true;
    r.logprobs = 2;
    for (int64_t i = 1; i < 41; ++i) r.prompt_tokens[i] = kEmbeddingToken;
    r.embeddings = {MakeEmbeddingRun(1, hidden, std::move(rows))};
    return r;
  };
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest plain = Varied(Request(text, 8));
  plain.ignore_eos = true;
  plain.logprobs = 2;
  Collected want = Drain(*MustSubmit(loop, plain));
  ASSERT_TRUE(want.status.ok()) << want.status;
  EXPECT_EQ(want.cached_prompt_tokens, 0);

  // The text's pages are cached, yet rows of the same values hash apart from the text's tokens:
  // a cold computation through the embedding path, with the same output.
  Collected got = Drain(*MustSubmit(loop, embedded(text, rows_of(text, 1, 41))));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.cached_prompt_tokens, 0);
  EXPECT_EQ(got.tokens[0], want.tokens[0]);
  ASSERT_EQ(got.logprobs[0].size(), want.logprobs[0].size());
  for (size_t i = 0; i < want.logprobs[0].size(); ++i) {
    EXPECT_EQ(got.logprobs[0][i].token, want.logprobs[0][i].token);
    EXPECT_NEAR(got.logprobs[0][i].logprob, want.logprobs[0][i].logprob, 1e-5);
  }
  // The same rows again: their two full pages are prefix hits.
  Collected again = Drain(*MustSubmit(loop, embedded(text, rows_of(text, 1, 41))));
  EXPECT_EQ(again.cached_prompt_tokens, 32);
  EXPECT_EQ(again.tokens[0], want.tokens[0]);
  // One value changed in row 20 (page 1): page 0 is still a hit, page 1 is not.
  std::vector<float> changed = rows_of(text, 1, 41);
  changed[19 * hidden + 3] += 0.25f;
  Collected other = Drain(*MustSubmit(loop, embedded(text, changed)));
  ASSERT_TRUE(other.status.ok()) << other.status;
  EXPECT_EQ(other.cached_prompt_tokens, 16);

  // Refused: rows of the wrong width, rows past the prompt, a placeholder without a row, and a
  // row over a position that holds a token.
  GenerationRequest wide = embedded(text, rows_of(text, 1, 41));
  wide.embeddings = {MakeEmbeddingRun(1, hidden + 1, std::vector<float>(40 * (hidden + 1), 0.f))};
  GenerationRequest past = embedded(text, rows_of(text, 1, 41));
  past.embeddings = {MakeEmbeddingRun(2, hidden, rows_of(text, 1, 41))};
  GenerationRequest bare = Request(text, 4);
  bare.prompt_tokens[5] = kEmbeddingToken;
  GenerationRequest over = Request(text, 4);
  over.embeddings = {MakeEmbeddingRun(1, hidden, rows_of(text, 1, 3))};
  for (const auto& [r, what] : {std::pair{wide, "hidden size"}, {past, "outside the"},
                                {bare, "out of range"}, {over, "not the embedding placeholder"}}) {
    absl::StatusOr<std::shared_ptr<RequestStream>> s = loop.Submit(r);
    ASSERT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(what), std::string::npos) << s.status();
  }
  loop.Stop();
}

// A StreamingLLM history longer than the whole pool: the pages between its sinks and its window
// were evicted, yet a prompt extending it takes a windowed prefix hit (sinks and window only)
// and generates what a cold run of the same prompt does.
TEST(EngineLoopTest, AWindowedHistoryLongerThanThePoolIsStillAPrefixHit) {
  EngineLoopOptions o;
  o.num_kv_pages = 24;  // 384 tokens; the history is 600
  o.max_num_batched_tokens = 64;
  const Ids history = RandomPrompt(600, 8);
  Ids more = history;
  for (int32_t t : RandomPrompt(9, 9)) more.push_back(t);
  GenerationRequest warm = Request(history, 0);
  warm.attention = SlidingWindow(64, 4);
  GenerationRequest ask = Varied(Request(more, 6));
  ask.ignore_eos = true;
  ask.attention = warm.attention;

  EngineLoop loop(Golden(), o);
  loop.Start();
  Collected w = Drain(*MustSubmit(loop, warm));
  ASSERT_TRUE(w.status.ok()) << w.status;
  Collected hit = Drain(*MustSubmit(loop, ask));
  ASSERT_TRUE(hit.status.ok()) << hit.status;
  EXPECT_EQ(hit.cached_prompt_tokens, 592);  // the history's 37 full pages
  loop.Stop();

  EngineLoop cold(Golden(), o);
  cold.Start();
  Collected want = Drain(*MustSubmit(cold, ask));
  EXPECT_EQ(want.cached_prompt_tokens, 0);
  EXPECT_EQ(hit.tokens[0], want.tokens[0]);
  cold.Stop();
}

TEST(EngineLoopTest, StopStringEndsTheOutputLikeGenerate) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Varied(Request(Golden()->tokenizer->Encode("The quick brown fox"), 60));
  r.ignore_eos = true;
  GenerateResult free_run = Expected(r);
  ASSERT_GE(free_run.text.size(), 12u);
  r.stop = {free_run.text.substr(free_run.text.size() / 2, 3)};
  GenerateResult want = Expected(r);
  ASSERT_EQ(want.finish, FinishReason::kStop);
  Collected got = Drain(*MustSubmit(loop, r));
  EXPECT_EQ(got.text[0], want.text);
  EXPECT_EQ(got.tokens[0], want.output_tokens);
  EXPECT_EQ(got.finish[0], FinishReason::kStop);
  EXPECT_EQ(got.text[0].find(r.stop[0]), std::string::npos);
  loop.Stop();
}

TEST(EngineLoopTest, TwoChoicesShareThePromptAndUseSeedPlusIndex) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  // 21 tokens: the prompt's last block is partial, so the choices copy it on write.
  GenerationRequest r = Varied(Request(RandomPrompt(21, 5), 24, /*temperature=*/1.0));
  r.ignore_eos = true;
  r.sampling.seed = 77;
  r.n = 2;
  Collected got = Drain(*MustSubmit(loop, r));
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(got.tokens.size(), 2u);
  GenerationRequest r0 = r, r1 = r;
  r1.sampling.seed = 78;
  EXPECT_EQ(got.tokens[0], Expected(r0).output_tokens);
  EXPECT_EQ(got.tokens[1], Expected(r1).output_tokens);
  EXPECT_NE(got.tokens[0], got.tokens[1]);
  EXPECT_EQ(got.completion_tokens, 48);
  EXPECT_TRUE(AllPagesFree(loop));
  loop.Stop();
}

TEST(EngineLoopTest, LogprobsAreLogSoftmaxOfRawLogits) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Request(RandomPrompt(12, 2), 6);
  r.ignore_eos = true;
  r.logprobs = 3;
  Collected got = Drain(*MustSubmit(loop, r));
  ASSERT_EQ(got.logprobs[0].size(), 6u);
  ASSERT_EQ(got.top[0].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const auto& top = got.top[0][i];
    ASSERT_EQ(top.size(), 3u);
    EXPECT_LE(top[0].logprob, 0.0f);
    EXPECT_GE(top[0].logprob, top[1].logprob);
    EXPECT_GE(top[1].logprob, top[2].logprob);
    // Greedy picks the most probable token.
    EXPECT_EQ(got.logprobs[0][i].token, top[0].token);
    EXPECT_EQ(got.logprobs[0][i].logprob, top[0].logprob);
    EXPECT_EQ(got.tokens[0][i], top[0].token);
  }
  loop.Stop();
}

TEST(EngineLoopTest, SubmitRejectsBadRequestsNamingTheField) {
  EngineLoopOptions o;
  o.max_queue = 1;
  EngineLoop loop(Golden(), o);  // not started: submissions stay queued
  auto expect_invalid = [&](GenerationRequest r, const std::string& field) {
    auto s = loop.Submit(std::move(r));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(field), std::string::npos) << s.status();
  };
  expect_invalid(Request({}, 4), "prompt");
  expect_invalid(Request(RandomPrompt(10, 1), 600), "max_tokens");
  GenerationRequest bad_n = Request(RandomPrompt(10, 1), 4);
  bad_n.n = 0;
  expect_invalid(bad_n, "n must");
  GenerationRequest bad_lp = Request(RandomPrompt(10, 1), 4);
  bad_lp.logprobs = 21;
  expect_invalid(bad_lp, "logprobs");
  GenerationRequest bad_temp = Request(RandomPrompt(10, 1), 4, -1.0);
  expect_invalid(bad_temp, "temperature");
  auto first = loop.Submit(Request(RandomPrompt(10, 1), 4));
  ASSERT_TRUE(first.ok());
  auto second = loop.Submit(Request(RandomPrompt(10, 1), 4));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  loop.Stop();
  Collected c = Drain(**first);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kUnavailable);
}

TEST(EngineLoopTest, StopFailsOpenRequestsWithUnavailable) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Request(RandomPrompt(30, 4), 480);
  r.ignore_eos = true;
  auto s = MustSubmit(loop, r);
  RequestOutput out;
  ASSERT_TRUE(s->Next(&out));
  loop.Stop();
  Collected rest = Drain(*s);
  EXPECT_EQ(rest.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(loop.Submit(r).status().code(), absl::StatusCode::kUnavailable);
}

TEST(EngineLoopTest, IdleLoopWaitsWithoutSpinning) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::clock_t c0 = std::clock();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu_s, 0.05) << "the idle engine loop burns CPU";
  loop.Stop();
}

TEST(EngineLoopTest, MetricsCountTokens) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  loop.Start();
  GenerationRequest r = Request(RandomPrompt(17, 8), 5);
  r.ignore_eos = true;
  Drain(*MustSubmit(loop, r));
  ASSERT_TRUE(AllPagesFree(loop));
  EngineMetrics m = loop.Snapshot();
  EXPECT_EQ(m.prompt_tokens_total, 17);
  EXPECT_EQ(m.generation_tokens_total, 5);
  EXPECT_EQ(m.prefix_cache_queries, 17);
  EXPECT_EQ(m.time_to_first_token.count, 1);
  EXPECT_EQ(m.inter_token_latency.count, 4);
  EXPECT_EQ(m.e2e_request_latency.count, 1);
  EXPECT_EQ(m.kv_cache_usage_perc, 0.0);
  EXPECT_EQ(m.num_requests_waiting, 0);
  loop.Stop();
}

}  // namespace
}  // namespace longview

namespace longview {
namespace {

// Windows through the engine loop (DESIGN §4 sliding_window): pages that leave the window go
// back to the pool while a request runs, so a pool smaller than the request's length serves it.
TEST(EngineLoopWindowTest, ModelNativeWindowServesRequestsLongerThanThePool) {
  auto r = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/mistral");
  ASSERT_TRUE(r.ok()) << r.status();
  std::shared_ptr<const LoadedModel> mistral(std::move(*r));  // window 16 on every layer
  EngineLoopOptions o;
  o.page_size = 4;
  o.max_num_batched_tokens = 16;
  o.num_kv_pages = 14;  // 56 tokens; the request is 250; the bound is 4 + 8 + 1 = 13 pages
  EngineLoop loop(mistral, o);
  loop.Start();
  GenerationRequest req = Request(RandomPrompt(50, 17), 200);
  req.ignore_eos = true;
  auto stream = MustSubmit(loop, req);
  ASSERT_NE(stream, nullptr);
  const Collected c = Drain(*stream);
  EXPECT_TRUE(c.status.ok()) << c.status;
  GenerateOptions go;
  go.sampling.temperature = 0;
  go.max_tokens = 200;
  go.ignore_eos = true;
  go.page_size = 4;
  auto want = Generate(*mistral, req.prompt_tokens, go);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(c.tokens.at(0), want->output_tokens);
  EXPECT_TRUE(AllPagesFree(loop));
  loop.Stop();
}

// StreamingLLM requests are not limited by the model's context (positions re-assigned), only by
// sinks + window; they match Generate with the same mode; bad combinations name the field.
TEST(EngineLoopWindowTest, StreamingRequestGoesPastTheContext) {
  const int64_t context = Golden()->config.max_position_embeddings;
  EngineLoopOptions o;
  o.page_size = 8;
  o.max_num_batched_tokens = 64;
  o.num_kv_pages = 32;
  EngineLoop loop(Golden(), o);
  loop.Start();
  GenerationRequest req = Varied(Request(RandomPrompt(20, 21), context + 50));
  req.ignore_eos = true;
  req.attention = SlidingWindow(32, 4);
  auto stream = MustSubmit(loop, req);
  ASSERT_NE(stream, nullptr);
  const Collected c = Drain(*stream);
  EXPECT_TRUE(c.status.ok()) << c.status;
  GenerateOptions go;
  go.sampling = req.sampling;
  go.max_tokens = req.max_tokens;
  go.ignore_eos = true;
  go.page_size = 8;
  go.attention = req.attention;
  auto want = Generate(*Golden(), req.prompt_tokens, go);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(c.tokens.at(0), want->output_tokens);

  GenerationRequest no_sinks = req;
  no_sinks.attention = SlidingWindow(32);  // positions are token indices: the context still applies
  auto refused = loop.Submit(no_sinks);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  GenerationRequest too_wide = req;
  too_wide.attention = SlidingWindow(context, 4);
  refused = loop.Submit(too_wide);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("attention.sinks"), std::string::npos)
      << refused.status();
  loop.Stop();
}

}  // namespace
}  // namespace longview

namespace longview {
namespace {

// Given a runner, the engine loop never touches the LoadedModel's CPU model: `serve` on a GPU
// frees the float32 host weights once the CUDA backend has its own copy.
TEST(EngineLoopRunnerTest, ServesWithoutTheHostModelWhenGivenARunner) {
  auto weights_holder = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama");
  ASSERT_TRUE(weights_holder.ok()) << weights_holder.status();
  auto lm = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama");
  ASSERT_TRUE(lm.ok()) << lm.status();
  (*lm)->weights.reset();  // as serve does after uploading to the GPU
  EngineLoopOptions o;
  o.num_kv_pages = 64;
  auto runner = CpuModelRunner::Create(**weights_holder, 64, o.page_size);
  ASSERT_TRUE(runner.ok()) << runner.status();
  o.runner = std::move(*runner);
  EngineLoop loop(std::shared_ptr<const LoadedModel>(std::move(*lm)), o);
  loop.Start();
  GenerationRequest req = Request(RandomPrompt(12, 5), 10);
  auto stream = MustSubmit(loop, req);
  ASSERT_NE(stream, nullptr);
  const Collected c = Drain(*stream);
  EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(c.tokens.at(0), Expected(req).output_tokens);
  loop.Stop();
}


GenerationRequest Plain(int32_t first_token, int64_t max_tokens, int32_t n = 1) {
  GenerationRequest r;
  r.request_id = "r" + std::to_string(first_token);
  r.prompt_tokens = {first_token, 5, 6, 7};
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  r.n = n;
  if (n > 1) r.sampling.temperature = 1.0;
  return r;
}

// The queue limit counts sequences (n each), and a call's requests are taken or refused whole.
TEST(EngineLoopTest, QueueCountsSequencesAndAdmitsARequestGroupWhole) {
  const int32_t vocab = static_cast<int32_t>(Golden()->config.vocab_size);
  auto runner = std::make_shared<test::GatedRunner>(64, 16, vocab);
  EngineLoopOptions o;
  o.runner = runner;
  o.num_kv_pages = 64;
  o.max_queue = 5;
  EngineLoop loop(Golden(), o);
  loop.Start();
  // Taken by the loop and held in its first step; it counts as waiting until that step is done.
  auto running = loop.Submit(Plain(10, 2));
  ASSERT_TRUE(running.ok()) << running.status();
  runner->WaitEntered();
  auto three = loop.Submit(Plain(11, 2, /*n=*/3));  // 1 + 3 sequences waiting
  ASSERT_TRUE(three.ok()) << three.status();
  std::vector<GenerationRequest> pair = {Plain(12, 2), Plain(13, 2)};
  auto refused = loop.SubmitAll(pair);  // 4 + 2 > 5: neither is queued
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("sequences"), std::string::npos) << refused.status();
  auto one = loop.Submit(Plain(14, 2));  // 4 + 1 = 5: fits, so the pair left nothing behind
  EXPECT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(loop.Submit(Plain(15, 2)).status().code(), absl::StatusCode::kResourceExhausted);
  runner->Open();
  for (auto* s : {&*running, &*three, &*one}) EXPECT_TRUE(Drain(**s).status.ok());
  loop.Stop();
}

// The watchdog: stalled seconds grow while the loop has work and does not move, and are 0 when
// idle or moving.
TEST(EngineLoopTest, StalledSecondsGrowOnlyWhileWorkDoesNotMove) {
  const int32_t vocab = static_cast<int32_t>(Golden()->config.vocab_size);
  auto runner = std::make_shared<test::GatedRunner>(64, 16, vocab);
  EngineLoopOptions o;
  o.runner = runner;
  o.num_kv_pages = 64;
  EngineLoop loop(Golden(), o);
  loop.Start();
  EXPECT_EQ(loop.StalledSeconds(), 0.0);  // idle
  auto stream = loop.Submit(Plain(10, 3));
  ASSERT_TRUE(stream.ok()) << stream.status();
  runner->WaitEntered();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(loop.StalledSeconds(), 0.25);
  runner->Open();
  EXPECT_TRUE(Drain(**stream).status.ok());
  // Finished: idle again (the loop publishes after the step that finished it).
  for (int i = 0; i < 200 && loop.StalledSeconds() != 0.0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(loop.StalledSeconds(), 0.0);
  loop.Stop();
}

// n sequences that together cannot fit the pool are refused at submit, naming n.
TEST(EngineLoopTest, RequestWhoseSequencesCanNeverFitIsRefusedAtSubmit) {
  EngineLoopOptions o;
  o.num_kv_pages = 8;
  o.page_size = 16;
  EngineLoop loop(Golden(), o);
  auto fits = loop.Submit(Plain(10, 100));  // 104 tokens: 7 pages
  EXPECT_TRUE(fits.ok()) << fits.status();
  auto too_many = loop.Submit(Plain(11, 100, /*n=*/2));  // 7 + 7 pages
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("n = 2"), std::string::npos) << too_many.status();
  loop.Stop();
}

}  // namespace
}  // namespace longview
