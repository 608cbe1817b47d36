"""End-to-end: the session API (/v1/sessions) of the real `longview serve` on loopback.

A session's answer must equal a plain completion of the session's tokens followed by the
question's (same mode, temperature 0), served from the prefix cache that the appends filled;
sessions belong to the API key that made them; bad input gets a 4xx naming the field and leaves
the session as it was.
"""
import base64
import http.client
import json
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from longview_server import LongviewServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("LONGVIEW_BINARY", os.path.join(ROOT, "build", "server", "longview"))
DATA = os.environ.get("LONGVIEW_TEST_DATA_DIR", os.path.join(ROOT, "tests", "data"))
MODEL_DIR = os.path.join(DATA, "golden", "llama")
CONTEXT = 512  # max_position_embeddings of the golden Llama
PAGE = 16      # --page-size default
KEY, OTHER = "sk-session-owner", "sk-session-other"
MAX_APPEND_BYTES = 65536


@pytest.fixture(scope="module")
def server():
    s = LongviewServer(BINARY, MODEL_DIR, "--grpc-port", "0", "--api-key", KEY, "--api-key", OTHER,
                       "--threads", "2", "--max-sessions-per-key", "4",
                       "--session-max-append-bytes", str(MAX_APPEND_BYTES))
    yield s
    assert s.stop() == 0, "".join(s.log)


def call(server, method, path, body=None, key=KEY, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    if resp.getheader("Content-Type", "").startswith("text/event-stream"):
        return resp.status, text
    return resp.status, (json.loads(text) if text else None)


def ok(server, method, path, body=None, key=KEY):
    status, out = call(server, method, path, body, key)
    assert status == 200, (status, out)
    return out


def tokenize(server, text, special):
    return ok(server, "POST", "/tokenize", {"prompt": text, "add_special_tokens": special})["tokens"]


def session_start(server):
    """What a session begins with: the tokens the tokenizer puts before a text (BOS)."""
    with_special = tokenize(server, "hello", True)
    without = tokenize(server, "hello", False)
    return with_special[:len(with_special) - len(without)]


def error_param(server, method, path, body, expect_status, key=KEY, raw=None):
    status, out = call(server, method, path, body, key, raw)
    assert status == expect_status, (status, out)
    return out["error"]["param"], out["error"]["message"]


def test_answer_equals_a_completion_of_the_session_and_comes_from_the_cache(server):
    s = ok(server, "POST", "/v1/sessions", {})
    sid = s["id"]
    assert s["object"] == "session"
    assert s["attention"] == {"mode": "sliding_window", "window": CONTEXT // 2, "sinks": 4}
    start = session_start(server)
    assert s["num_tokens"] == len(start)

    ids = [(7 * i + 3) % 200 + 10 for i in range(70)]
    a = ok(server, "POST", f"/v1/sessions/{sid}/append", {"token_ids": ids})
    assert a["appended_tokens"] == 70 and a["num_tokens"] == len(start) + 70
    text = " the river keeps its own time and the lamps come on one by one"
    b = ok(server, "POST", f"/v1/sessions/{sid}/append", {"text": text})
    text_ids = tokenize(server, text, False)
    assert b["appended_tokens"] == len(text_ids)
    history = start + ids + text_ids
    assert b["num_tokens"] == len(history)
    # The second append's prompt is the whole history: the first one's full pages were cached.
    assert b["cached_tokens"] >= (len(start) + 70) // PAGE * PAGE, b

    question = " what comes on?"
    ask = ok(server, "POST", f"/v1/sessions/{sid}/ask",
             {"question": question, "max_tokens": 8, "temperature": 0, "ignore_eos": True})
    q_ids = tokenize(server, question, False)
    assert ask["usage"]["prompt_tokens"] == len(history) + len(q_ids)
    assert ask["usage"]["completion_tokens"] == 8
    # Every full page of the history came from the cache the appends filled.
    assert ask["usage"]["prompt_tokens_details"]["cached_tokens"] >= len(history) // PAGE * PAGE
    ref = ok(server, "POST", "/v1/completions",
             {"prompt": history + q_ids, "max_tokens": 8, "temperature": 0, "ignore_eos": True,
              "longview": {"attention": s["attention"]}})
    assert ask["choices"][0]["text"] == ref["choices"][0]["text"]

    # Asking does not change the session.
    g = ok(server, "GET", f"/v1/sessions/{sid}")
    assert g["num_tokens"] == len(history) and g["num_asks"] == 1 and g["num_appends"] == 3

    # Streamed, the same answer.
    status, sse = call(server, "POST", f"/v1/sessions/{sid}/ask",
                       {"question": question, "max_tokens": 8, "temperature": 0,
                        "ignore_eos": True, "stream": True})
    assert status == 200
    events = [line[6:] for line in sse.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    streamed = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]
                       if json.loads(e)["choices"])
    assert streamed == ask["choices"][0]["text"]

    # With "append": true the question and the answer join the session.
    turn = ok(server, "POST", f"/v1/sessions/{sid}/ask",
              {"question": question, "max_tokens": 5, "temperature": 0, "ignore_eos": True,
               "append": True})
    g = ok(server, "GET", f"/v1/sessions/{sid}")
    assert g["num_tokens"] == len(history) + len(q_ids) + turn["usage"]["completion_tokens"]
    ok(server, "DELETE", f"/v1/sessions/{sid}")


def token_embeddings(ids):
    """The model's own input embeddings of `ids`: rows of model.embed_tokens.weight (float32)."""
    with open(os.path.join(MODEL_DIR, "model.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        info = header["model.embed_tokens.weight"]
        assert info["dtype"] == "F32"
        hidden = info["shape"][1]
        base = f.tell()  # the data follows the header
        begin = info["data_offsets"][0]
        rows = []
        for t in ids:
            f.seek(base + begin + t * hidden * 4)
            rows.append(f.read(hidden * 4))
    return hidden, rows


def test_appending_the_models_own_token_embeddings_answers_as_the_text(server):
    text = " the lamps come on one by one along the river"
    ids = tokenize(server, text, False)
    hidden, rows = token_embeddings(ids)
    question = " what comes on?"
    ask_body = {"question": question, "max_tokens": 6, "temperature": 0, "ignore_eos": True,
                "logprobs": 2}

    plain = ok(server, "POST", "/v1/sessions", {})["id"]
    ok(server, "POST", f"/v1/sessions/{plain}/append", {"text": text})
    want = ok(server, "POST", f"/v1/sessions/{plain}/ask", ask_body)

    half = len(ids) // 2
    frames = [{"block_id": "frame-0", "timestamp": 0.0, "rows": half},
              {"block_id": "frame-1", "timestamp": 0.5, "rows": len(ids) - half}]
    bodies = [  # base64 float32 with frames, and the same values as nested arrays
        {"dtype": "f32", "shape": [len(ids), hidden], "data": base64.b64encode(b"".join(rows)).decode(),
         "frames": frames},
        {"data": [list(struct.unpack(f"<{hidden}f", r)) for r in rows]},
    ]
    for body in bodies:
        sid = ok(server, "POST", "/v1/sessions", {})
        a = ok(server, "POST", f"/v1/sessions/{sid['id']}/append", {"embeddings": body})
        assert a["appended_tokens"] == len(ids)
        assert a["num_tokens"] == sid["num_tokens"] + len(ids)
        if "frames" in body:
            assert [(f["block_id"], f["start"], f["rows"]) for f in a["frames"]] == [
                ("frame-0", sid["num_tokens"], half),
                ("frame-1", sid["num_tokens"] + half, len(ids) - half)]
        else:
            assert [f["block_id"] for f in a["frames"]] == [f"pos-{sid['num_tokens']}"]
        got = ok(server, "POST", f"/v1/sessions/{sid['id']}/ask", ask_body)
        assert got["choices"][0]["text"] == want["choices"][0]["text"]
        lp_want = want["choices"][0]["logprobs"]["token_logprobs"]
        lp_got = got["choices"][0]["logprobs"]["token_logprobs"]
        assert lp_got == pytest.approx(lp_want, abs=1e-4)
        # The history's full pages (rows included) came from the cache the append filled.
        cached = got["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert cached >= a["num_tokens"] // PAGE * PAGE, (cached, a)
        g = ok(server, "GET", f"/v1/sessions/{sid['id']}")
        assert g["num_frames"] == len(a["frames"])
        assert g["embedding_bytes"] == len(ids) * hidden * 4
        # Text after the rows: the session goes on.
        ok(server, "POST", f"/v1/sessions/{sid['id']}/append", {"text": " and then"})
        ok(server, "POST", f"/v1/sessions/{sid['id']}/ask", {"question": " ok", "max_tokens": 2})
        ok(server, "DELETE", f"/v1/sessions/{sid['id']}")
    ok(server, "DELETE", f"/v1/sessions/{plain}")


def test_a_windowed_session_outgrows_the_context_and_a_dense_one_does_not(server):
    sid = ok(server, "POST", "/v1/sessions", {})["id"]
    for r in range(5):  # 1,000 tokens past a 512-token context
        ids = [(11 * i + 5 * r) % 300 + 5 for i in range(200)]
        ok(server, "POST", f"/v1/sessions/{sid}/append", {"token_ids": ids})
    ask = ok(server, "POST", f"/v1/sessions/{sid}/ask",
             {"question": " and then?", "max_tokens": 4, "temperature": 0})
    assert ask["usage"]["prompt_tokens"] > CONTEXT
    ok(server, "DELETE", f"/v1/sessions/{sid}")

    dense = ok(server, "POST", "/v1/sessions", {"longview": {"attention": {"mode": "dense"}}})
    assert dense["attention"] == {"mode": "dense"}
    ids = list(range(5, 405))
    ok(server, "POST", f"/v1/sessions/{dense['id']}/append", {"token_ids": ids})
    param, message = error_param(server, "POST", f"/v1/sessions/{dense['id']}/append",
                                 {"token_ids": ids}, 400)
    assert param == "token_ids" and "context" in message, message
    # Refused: nothing was appended, and the session still answers.
    assert ok(server, "GET", f"/v1/sessions/{dense['id']}")["num_tokens"] == dense["num_tokens"] + 400
    ok(server, "POST", f"/v1/sessions/{dense['id']}/ask", {"question": " ok", "max_tokens": 2})
    ok(server, "DELETE", f"/v1/sessions/{dense['id']}")


def test_sessions_belong_to_their_key(server):
    sid = ok(server, "POST", "/v1/sessions", {})["id"]
    ok(server, "POST", f"/v1/sessions/{sid}/append", {"text": " mine"})
    for method, path, body in [("GET", f"/v1/sessions/{sid}", None),
                               ("POST", f"/v1/sessions/{sid}/append", {"text": " theirs"}),
                               ("POST", f"/v1/sessions/{sid}/ask", {"question": " what?"}),
                               ("DELETE", f"/v1/sessions/{sid}", None)]:
        status, out = call(server, method, path, body, key=OTHER)
        assert status == 404, (method, path, status, out)
        assert sid in out["error"]["message"]
    assert ok(server, "GET", "/v1/sessions", key=OTHER)["data"] == []
    assert [s["id"] for s in ok(server, "GET", "/v1/sessions")["data"]] == [sid]
    status, _ = call(server, "GET", f"/v1/sessions/{sid}", key=None)
    assert status == 401
    status, _ = call(server, "GET", f"/v1/sessions/{sid}", key="sk-wrong")
    assert status == 401
    # The owner's session is as it was.
    assert ok(server, "GET", f"/v1/sessions/{sid}")["num_appends"] == 2
    ok(server, "DELETE", f"/v1/sessions/{sid}")
    status, _ = call(server, "GET", f"/v1/sessions/{sid}")
    assert status == 404


def test_sessions_per_key_are_limited(server):
    ids = [ok(server, "POST", "/v1/sessions", {}, key=OTHER)["id"] for _ in range(4)]
    status, out = call(server, "POST", "/v1/sessions", {}, key=OTHER)
    assert status == 429 and "--max-sessions-per-key" in out["error"]["message"], out
    ok(server, "POST", "/v1/sessions", {})  # the other key has its own room
    ok(server, "DELETE", f"/v1/sessions/{ids[0]}", key=OTHER)
    ids[0] = ok(server, "POST", "/v1/sessions", {}, key=OTHER)["id"]
    for sid in ids:
        ok(server, "DELETE", f"/v1/sessions/{sid}", key=OTHER)
    for s in ok(server, "GET", "/v1/sessions")["data"]:
        ok(server, "DELETE", f"/v1/sessions/{s['id']}")


def test_bad_input_names_the_field_and_leaves_the_session_alone(server):
    sid = ok(server, "POST", "/v1/sessions", {})["id"]
    ok(server, "POST", f"/v1/sessions/{sid}/append", {"text": " a quiet street"})
    before = ok(server, "GET", f"/v1/sessions/{sid}")
    append = f"/v1/sessions/{sid}/append"
    ask = f"/v1/sessions/{sid}/ask"
    cases = [
        (append, {}, 400, "text"),
        (append, {"text": 5}, 400, "text"),
        (append, {"text": ""}, 400, "text"),
        (append, {"token_ids": []}, 400, "token_ids"),
        (append, {"token_ids": [-1]}, 400, "token_ids"),
        (append, {"token_ids": [1, "2"]}, 400, "token_ids"),
        (append, {"token_ids": [10 ** 9]}, 400, "token_ids"),
        (append, {"embeddings": [[0.5, 0.25]]}, 400, "embeddings"),
        (append, {"embeddings": {"data": [[0.5, 0.25]]}}, 400, "embeddings.data[0]"),
        (append, {"embeddings": {"data": "AAAA", "dtype": "bf16", "shape": [1, 64]}}, 400,
         "embeddings.data"),
        (append, {"embeddings": {"data": [[0.0] * 64], "frames": [{"rows": 2}]}}, 400,
         "embeddings.frames[0].rows"),
        (append, {"text": "a", "token_ids": [1]}, 400, "token_ids"),
        (append, {"txt": "a"}, 400, "txt"),
        (append, {"text": "x" * MAX_APPEND_BYTES}, 413, None),
        (ask, {}, 400, "question"),
        (ask, {"question": 3}, 400, "question"),
        (ask, {"question": "q", "n": 2}, 400, "n"),
        (ask, {"question": "q", "prompt": "p"}, 400, "prompt"),
        (ask, {"question": "q", "longview": {}}, 400, "longview"),
        (ask, {"question": "q", "temperature": -1}, 400, "temperature"),
        (ask, {"question": "q", "max_tokens": 0}, 400, "max_tokens"),
        (ask, {"question": "q", "append": "yes"}, 400, "append"),
        (ask, {"question": "q", "model": "another-model"}, 404, "model"),
        ("/v1/sessions", {"retrieval": {"top_k": 8}}, 400, "retrieval"),
        ("/v1/sessions", {"longview": {"attention": {"mode": "sliding_window", "window": 0}}},
         400, "longview.attention.window"),
        ("/v1/sessions", {"longview": {"kv": {}}}, 400, "longview.kv"),
        ("/v1/sessions", {"colour": "red"}, 400, "colour"),
    ]
    for path, body, status, param in cases:
        got_param, message = error_param(server, "POST", path, body, status)
        if param is not None:
            assert got_param == param, (body, got_param, message)
            assert param in message, (body, message)
    for raw in ["{", "[1, 2]", "null"]:
        error_param(server, "POST", append, None, 400, raw=raw)
    status, _ = call(server, "POST", "/v1/sessions/sess-000000000000000000000000/append",
                     {"text": "x"})
    assert status == 404
    status, _ = call(server, "POST", f"/v1/sessions/{sid}/rewind", {})
    assert status == 404
    status, _ = call(server, "PUT", f"/v1/sessions/{sid}", {})
    assert status == 405
    status, _ = call(server, "GET", append)
    assert status == 405
    after = ok(server, "GET", f"/v1/sessions/{sid}")
    assert after["num_tokens"] == before["num_tokens"]
    assert after["num_appends"] == before["num_appends"]
    ok(server, "POST", ask, {"question": " and?", "max_tokens": 3})
    ok(server, "DELETE", f"/v1/sessions/{sid}")
