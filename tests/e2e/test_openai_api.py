"""End-to-end tests of `longview serve`'s OpenAI-compatible API with the official openai SDK.

Starts the real binary ($LONGVIEW_BINARY) on a free loopback port (--port 0; the bound port is
read from its stderr) with the golden Llama checkpoint and an API key, and checks completions,
chat (also through a Jinja chat template file), streaming, n, stop strings, logprobs, seeds,
error mapping to the SDK's typed errors, cancellation of a disconnected stream, and greedy
parity with `longview generate`, alone and inside a batch of 32 concurrent requests.

Run: tools/python_env.sh && LONGVIEW_BINARY=build/server/longview \
     .venv/bin/python -m pytest -q tests/e2e/test_openai_api.py
"""
import concurrent.futures
import http.client
import json
import asyncio
import os
import resource
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from longview_server import LongviewServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("LONGVIEW_BINARY", os.path.join(ROOT, "build", "server", "longview"))
DATA = os.environ.get("LONGVIEW_TEST_DATA_DIR", os.path.join(ROOT, "tests", "data"))
MODEL_DIR = os.path.join(DATA, "golden", "llama")
MODEL = "golden-llama"
KEY = "sk-e2e-test-key"
CONTEXT = 512  # max_position_embeddings of the golden Llama
EMBEDDED_DIR = os.path.join(ROOT, "models", "longview-tiny")
MAX_BODY = 65536


class Server(LongviewServer):
    def __init__(self, *extra, model_dir=MODEL_DIR):
        super().__init__(BINARY, model_dir, "--grpc-port", "0", "--api-key", KEY,
                         "--served-model-name", MODEL, "--max-body-bytes", str(MAX_BODY),
                         "--threads", "2", *extra)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()
    assert s.proc.returncode == 0, "".join(s.log)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY,
                         max_retries=0, timeout=120)


def raw_request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def metrics(server):
    status, data = raw_request(server, "GET", "/metrics")
    assert status == 200
    out = {}
    for line in data.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name.split("{")[0] if "_bucket" not in name else name] = float(value)
    return out


def generate_cli(prompt, max_tokens):
    r = subprocess.run(
        [BINARY, "generate", "--model", MODEL_DIR, "--prompt", prompt, "--max-tokens",
         str(max_tokens), "--temperature", "0", "--ignore-eos"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


def test_health_models_and_metrics_are_served(server, client):
    assert raw_request(server, "GET", "/health", headers={"Authorization": ""})[0] == 200
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    m = metrics(server)
    for name in ["longview:num_requests_running", "longview:num_requests_waiting",
                 "longview:kv_cache_usage_perc", "longview:prompt_tokens_total",
                 "longview:generation_tokens_total", "longview:num_preemptions_total",
                 "longview:prefix_cache_queries_total", "longview:prefix_cache_hits_total",
                 "longview:time_to_first_token_seconds_count",
                 "longview:inter_token_latency_seconds_count",
                 "longview:e2e_request_latency_seconds_count"]:
        assert name in m, name


def test_completion(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=10,
                                  temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "text_completion"
    assert r.model == MODEL
    assert len(r.choices) == 1
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].text
    assert r.usage.completion_tokens == 10
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 10


def test_completion_prompt_lists_and_token_ids(client):
    r = client.completions.create(model=MODEL, prompt=["a b c", "d e"], max_tokens=3,
                                  temperature=0, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert r.usage.completion_tokens == 6
    ids = client.completions.create(model=MODEL, prompt=[1, 5, 7, 9], max_tokens=2,
                                    temperature=0, extra_body={"ignore_eos": True})
    assert ids.usage.prompt_tokens == 4


def test_chat(client):
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hello there"}],
        max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 6


def test_jinja_chat_template():
    """--chat-template FILE: the prompt is the Jinja template's rendering (its token count equals
    jinja2's rendering of the same template, encoded with sentencepiece); chat_template_kwargs
    reach it through extra_body; its raise_exception and a kwarg naming a special token are 400s."""
    import sentencepiece
    sys.path.insert(0, os.path.join(ROOT, "tests", "engine", "text"))
    import render_chat_references as refs

    template = os.path.join(DATA, "chat_templates", "llama2.jinja")
    s = Server("--chat-template", template)
    try:
        assert any("jinja chat template from --chat-template " + template in line
                   for line in s.log), "".join(s.log)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=KEY, max_retries=0,
                          timeout=120)
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hello there"},
                    {"role": "assistant", "content": "Hi."},
                    {"role": "user", "content": "Grüße, again"}]
        r = c.chat.completions.create(model=MODEL, messages=messages, max_tokens=2,
                                      extra_body={"chat_template_kwargs": {"unused": True}})
        text = refs.ENV.from_string(open(template, encoding="utf-8").read()).render(
            messages=refs.template_messages(messages), bos_token="<s>", eos_token="</s>",
            unk_token="<unk>", tools=None, documents=None, add_generation_prompt=True)
        sp = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(MODEL_DIR, "tokenizer.model"))
        ids = []
        for part in re.split(r"(<s>|</s>)", text):
            ids += [sp.bos_id()] if part == "<s>" else [sp.eos_id()] if part == "</s>" else (
                sp.encode(part) if part else [])
        assert r.usage.prompt_tokens == len(ids), text
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model=MODEL, max_tokens=2, messages=[
                {"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        assert "Conversation roles must alternate" in str(e.value)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model=MODEL, max_tokens=2, messages=messages[1:2],
                                      extra_body={"chat_template_kwargs": {"eos_token": "x"}})
        assert "chat_template_kwargs.eos_token" in str(e.value)
    finally:
        assert s.stop() == 0, "".join(s.log)


def test_streaming_is_token_by_token_and_matches_non_streaming(client):
    full = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=16,
                                     temperature=0, extra_body={"ignore_eos": True})
    stream = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=16,
                                       temperature=0, stream=True,
                                       stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True})
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.text:
                pieces.append(c.text)
            if c.finish_reason:
                finish = c.finish_reason
    assert "".join(pieces) == full.choices[0].text
    # Streamed incrementally, not as one blob at the end. How many chunks depends on timing:
    # tokens that pile up while the server's writer is busy go out in one chunk (vLLM's output
    # collector merges the same way), so under load 16 tokens may take fewer than 16 chunks.
    assert len(pieces) >= 2, pieces
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 16

    chat_full = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream please"}], max_tokens=8,
        temperature=0, extra_body={"ignore_eos": True})
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Stream please"}], max_tokens=8,
        temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True})
    roles, content, chunks, usage = [], [], 0, None
    for chunk in chat:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                content.append(c.delta.content)
    # The chat stream's shape: one role delta, content equal to the non-streamed answer (its
    # chunking depends on timing, as above), usage at the end.
    assert roles == ["assistant"]
    assert "".join(content) == chat_full.choices[0].message.content
    assert usage.completion_tokens == 8


def test_n_equals_2(client):
    r = client.completions.create(model=MODEL, prompt="Pick a word:", max_tokens=5, n=2,
                                  temperature=1.0, seed=3, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert r.usage.completion_tokens == 10
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "two"}], max_tokens=4, n=2,
        temperature=0, extra_body={"ignore_eos": True})
    assert len(chat.choices) == 2
    # Greedy choices agree.
    assert chat.choices[0].message.content == chat.choices[1].message.content


def test_stop_strings(client):
    base = client.completions.create(model=MODEL, prompt="Counting: one two", max_tokens=32,
                                     temperature=0, extra_body={"ignore_eos": True})
    text = base.choices[0].text
    assert len(text) >= 6, text
    stop = text[4:6]
    cut = text.index(stop)
    r = client.completions.create(model=MODEL, prompt="Counting: one two", max_tokens=32,
                                  temperature=0, stop=[stop, "\x00never"],
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].text == text[:cut]
    assert r.choices[0].finish_reason == "stop"
    # Streaming stops at the same place.
    pieces = [c.text for ch in client.completions.create(
        model=MODEL, prompt="Counting: one two", max_tokens=32, temperature=0, stop=stop,
        stream=True, extra_body={"ignore_eos": True}) for c in ch.choices]
    assert "".join(pieces) == text[:cut]


def test_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="Logprobs here", max_tokens=6,
                                  temperature=0, logprobs=2, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 6 and len(lp.token_logprobs) == 6 and len(lp.top_logprobs) == 6
    assert len(lp.text_offset) == 6
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert chosen <= 0
        assert 1 <= len(top) <= 3
        assert chosen >= max(top.values()) - 1e-5  # greedy picks the most likely
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0,
        logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    content = chat.choices[0].logprobs.content
    assert len(content) == 4
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert entry.bytes is not None
        assert abs(entry.logprob - max(t.logprob for t in entry.top_logprobs)) < 1e-5


def test_seed_reproducibility(client):
    def sample(seed):
        return [client.completions.create(model=MODEL, prompt="Random:", max_tokens=24,
                                          temperature=1.0, top_p=0.95, seed=seed, n=2,
                                          extra_body={"ignore_eos": True})
                for _ in range(2)]
    a, b = sample(1234)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]


def test_kv_policy_per_request(server, client):
    """A KV budget policy through the SDK's extra_body: served, its evictions counted in
    /metrics per policy; a bad field or n > 1 is a 400 naming it."""
    prompt = " ".join(f"item {i}" for i in range(40))
    r = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=8, temperature=0,
        extra_body={"ignore_eos": True, "longview": {"kv": {"policy": "h2o", "budget": 32}}})
    assert r.usage.completion_tokens == 8
    assert r.usage.prompt_tokens > 64
    status, data = raw_request(server, "GET", "/metrics")
    assert status == 200
    evicted = [float(line.rsplit(" ", 1)[1]) for line in data.decode().splitlines()
               if line.startswith("longview:kv_policy_tokens_evicted_total{")
               and 'policy="h2o"' in line]
    assert evicted and evicted[0] >= r.usage.prompt_tokens - 32, evicted
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=2, extra_body={
            "longview": {"kv": {"policy": "h2o", "budget": 32, "sinks": 2}}})
    assert "longview.kv.sinks" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=2, n=2, extra_body={
            "longview": {"kv": {"policy": "snapkv", "budget": 32}}})
    assert "n must be 1" in str(e.value)


def test_hip_attention_per_request(client):
    """Attention mode hip through the SDK's extra_body: a prompt long enough to prune is served
    (greedy, same answer twice), differs from dense in its log-probabilities, takes refresh
    intervals and dense layers, and bad stages, intervals or layers are a 400 naming the field."""
    prompt = " ".join(f"item {i}" for i in range(60))
    hip = {"mode": "hip", "sinks": 4, "window": 32, "top_k": 16, "block_size": 8,
           "stages": [{"chunk": 16, "keep": 64}, {"chunk": 4, "keep": 16}]}

    def run(attention):
        return client.completions.create(
            model=MODEL, prompt=prompt, max_tokens=6, temperature=0, logprobs=1,
            extra_body={"ignore_eos": True, "longview": {"attention": attention}})
    a, b, dense = run(hip), run(hip), run({"mode": "dense"})
    assert a.usage.prompt_tokens > 100 and a.usage.completion_tokens == 6
    assert a.choices[0].text == b.choices[0].text
    assert a.choices[0].logprobs.token_logprobs == b.choices[0].logprobs.token_logprobs
    assert a.choices[0].logprobs.token_logprobs != dense.choices[0].logprobs.token_logprobs
    tuned = run({**hip, "refresh": [4, 2], "dense_layers": [0, 2], "dense_top_k": 32})
    assert tuned.usage.completion_tokens == 6
    assert tuned.choices[0].text == run({**hip, "refresh": [4, 2], "dense_layers": [0, 2],
                                         "dense_top_k": 32}).choices[0].text
    for attention, field in [({**hip, "top_k": 12}, "longview.attention.top_k"),
                             ({**hip, "stages": [{"chunk": 16}]}, "longview.attention.stages[0]"),
                             ({**hip, "stages": [{"chunk": 4, "keep": 64}, {"chunk": 16, "keep": 16}]},
                              "longview.attention.stages[1]"),
                             ({**hip, "refresh": [8]}, "longview.attention.refresh"),
                             ({**hip, "dense_layers": [1, 1]}, "longview.attention.dense_layers[1]"),
                             ({**hip, "dense_layers": [0, 99]}, "attention.dense_layers[1] = 99")]:
        with pytest.raises(openai.BadRequestError) as e:
            run(attention)
        assert field in str(e.value), (attention, str(e.value))


def test_errors_surface_as_typed_sdk_errors(server, client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    assert e.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=-5)
    assert "max_tokens" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="word " * 600, max_tokens=2)
    assert "maximum context length" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=CONTEXT)
    assert "max_tokens" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       extra_body={"longview": {"attention": {"mode": "lizard"}}})
    assert "longview.attention.mode" in str(e.value)
    bad_key = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="wrong",
                            max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    with pytest.raises(openai.AuthenticationError):
        bad_key.completions.create(model=MODEL, prompt="x", max_tokens=2)
    # Dense attention through the extension is accepted.
    ok = client.completions.create(model=MODEL, prompt="x", max_tokens=2,
                                   extra_body={"longview": {"attention": {"mode": "dense"}}})
    assert ok.usage.completion_tokens >= 1
    # StreamingLLM (sliding window with sinks) is accepted; bad values are 400 naming the field.
    ok = client.completions.create(
        model=MODEL, prompt="x", max_tokens=4, extra_body={"longview": {"attention": {
            "mode": "sliding_window", "window": 8, "sinks": 2}}})
    assert ok.usage.completion_tokens >= 1
    # A stream with sinks is not limited by the model's context (positions are re-assigned);
    # without sinks the same length is refused naming the context.
    context = client.models.list().data[0].model_extra["max_model_len"]
    long_stream = client.completions.create(
        model=MODEL, prompt="x", max_tokens=context + 40, temperature=0,
        extra_body={"ignore_eos": True, "longview": {"attention": {
            "mode": "sliding_window", "window": 16, "sinks": 2}}})
    assert long_stream.usage.completion_tokens == context + 40
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=context + 40,
                                  extra_body={"longview": {"attention": {
                                      "mode": "sliding_window", "window": 16}}})
    assert "maximum context length" in str(e.value)
    for attention, field in [({"mode": "sliding_window"}, "longview.attention.window"),
                             ({"mode": "sliding_window", "window": 0}, "longview.attention.window"),
                             ({"mode": "sliding_window", "window": 4, "sinks": 5},
                              "longview.attention.sinks"),
                             ({"mode": "nope"}, "longview.attention.mode")]:
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(model=MODEL, prompt="x", max_tokens=2,
                                      extra_body={"longview": {"attention": attention}})
        assert field in str(e.value), (attention, str(e.value))


def test_raw_http_errors(server):
    status, body = raw_request(server, "POST", "/v1/completions", body=b"{not json")
    assert status == 400
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "JSON" in err["message"]
    status, body = raw_request(server, "POST", "/v1/completions",
                               body=json.dumps({"prompt": "x" * (MAX_BODY + 10)}).encode())
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    status, _ = raw_request(server, "GET", "/v1/nothing")
    assert status == 404
    status, _ = raw_request(server, "GET", "/v1/models", headers={"Authorization": "Bearer no"})
    assert status == 401


def test_disconnect_mid_stream_frees_blocks(server, client):
    before = metrics(server)["longview:generation_tokens_total"]
    max_tokens = CONTEXT - 32
    stream = client.completions.create(model=MODEL, prompt="Disconnect me", max_tokens=max_tokens,
                                       temperature=0, stream=True,
                                       extra_body={"ignore_eos": True})
    got = 0
    for chunk in stream:
        got += sum(1 for c in chunk.choices if c.text)
        if got >= 3:
            break
    running = metrics(server)["longview:num_requests_running"]
    assert running == 1
    stream.close()  # drops the connection
    deadline = time.time() + 20
    m = metrics(server)
    while time.time() < deadline and (m["longview:num_requests_running"] != 0 or
                                      m["longview:kv_cache_usage_perc"] != 0):
        time.sleep(0.05)
        m = metrics(server)
    assert m["longview:num_requests_running"] == 0
    assert m["longview:num_requests_waiting"] == 0
    assert m["longview:kv_cache_usage_perc"] == 0
    # Cancelled, not run to completion.
    assert m["longview:generation_tokens_total"] - before < max_tokens


PROMPTS = ["In the beginning", "Hello world", "The quick brown fox jumps", "Once upon a time",
           "1 2 3 4 5", "A long time ago in a galaxy", "To be or not", "Lorem ipsum dolor sit"]


def test_greedy_matches_longview_generate_alone_and_batched(server, client):
    n_tokens = 24
    expected = {p: generate_cli(p, n_tokens) for p in PROMPTS}
    alone = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=n_tokens,
                                      temperature=0, extra_body={"ignore_eos": True})
    assert alone.choices[0].text == expected[PROMPTS[0]]

    def one(prompt):
        r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=n_tokens,
                                      temperature=0, extra_body={"ignore_eos": True})
        return prompt, r.choices[0].text

    jobs = [p for p in PROMPTS for _ in range(4)]  # 32 concurrent requests
    assert len(jobs) == 32
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, jobs))
    for prompt, text in results:
        assert text == expected[prompt], prompt
    assert time.time() - start < 120


def test_queue_full_is_429():
    # The embedded model (8k context, ~1k tokens/s here) keeps the first request generating for
    # seconds, so the queue is reliably full; the golden model finished 496 tokens too fast.
    s = Server("--max-num-seqs", "1", "--max-queue", "1", model_dir=EMBEDDED_DIR)
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=KEY, max_retries=0)
        # One running, one waiting: the queue is full while the first generates. The second is
        # sent only once the first streams (is running), or it could find the first still queued.
        def busy():
            return c.completions.create(model=MODEL, prompt="busy", max_tokens=6000,
                                        temperature=0, stream=True,
                                        extra_body={"ignore_eos": True})
        streams = [busy()]
        next(iter(streams[0]))
        streams.append(busy())
        with pytest.raises(openai.RateLimitError) as e:
            c.completions.create(model=MODEL, prompt="one more", max_tokens=2)
        assert e.value.status_code == 429
        for st in streams:
            st.close()
    finally:
        s.stop()


def test_sigterm_drains_open_requests_and_refuses_new_ones():
    # The embedded model keeps a 2000-token stream generating for seconds after SIGTERM.
    s = Server("--shutdown-timeout", "180", model_dir=EMBEDDED_DIR)
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=KEY, max_retries=0,
                      timeout=120)
    stream = c.completions.create(model=MODEL, prompt="drain", max_tokens=2000, temperature=0,
                                  stream=True, extra_body={"ignore_eos": True})
    chunks = [next(iter(stream))]
    s.proc.send_signal(signal.SIGTERM)
    status = None
    for _ in range(100):
        status, body = raw_request(s, "GET", "/health")
        if status == 503:
            break
        time.sleep(0.05)
    assert status == 503 and b"draining" in body, (status, body)
    with pytest.raises(openai.APIStatusError) as e:
        c.completions.create(model=MODEL, prompt="too late", max_tokens=2)
    assert e.value.status_code == 503
    try:
        chunks.extend(stream)  # the open request runs to its end
    except openai.APIError as e:
        s.proc.wait(timeout=30)
        time.sleep(0.5)
        raise AssertionError("the stream was cut: %s\n%s" % (e, "".join(s.log)))
    assert chunks[-1].choices[0].finish_reason == "length", chunks[-1]
    assert s.proc.wait(timeout=90) == 0, "".join(s.log)
    for _ in range(100):  # stderr is read by a thread: let it catch up
        if any("drained" in line for line in s.log):
            break
        time.sleep(0.02)
    assert any("longview: drained" in line for line in s.log), "".join(s.log)


def test_holds_2000_concurrent_streaming_connections():
    """2,000 clients connect first, then all stream at once; every one gets its [DONE]."""
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * n), hard))
    # --max-connections: more than the default cap of 1024 are held open at once.
    s = Server("--max-queue", "4096", "--num-kv-pages", "8192", "--max-connections", str(2 * n))
    body = json.dumps({"model": MODEL, "prompt": "hi there", "max_tokens": 4, "temperature": 0,
                       "stream": True, "ignore_eos": True}).encode()
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: e2e\r\nAuthorization: Bearer " +
               KEY.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\n\r\n" + body)

    async def one(gate):
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        await gate.wait()
        writer.write(request)
        await writer.drain()
        data = b""
        while b"data: [DONE]" not in data:
            chunk = await asyncio.wait_for(reader.read(65536), 120)
            if not chunk:
                break
            data += chunk
        writer.close()
        return data

    async def run_all():
        gate = asyncio.Event()
        tasks = [asyncio.create_task(one(gate)) for _ in range(n)]
        await asyncio.sleep(1.0)  # every connection open and idle at once
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(run_all())
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors[:3]
        assert all(r.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in r for r in results)
        m = metrics(s)
        assert m["longview:num_requests_running"] == 0
    finally:
        s.stop()
