#!/usr/bin/env python3
"""End-to-end test of longview's gRPC API with a real grpcio client.

Generates Python stubs from proto/longview.proto (grpc_tools.protoc, into a temp dir), starts
`longview serve --grpc-port P --port Q --api-key K` on loopback with the golden Llama model, and
checks: streamed greedy text equals `longview generate --temperature 0`; usage and finish reason
in the last message; Tokenize/Detokenize; ListModels; INVALID_ARGUMENT naming the field;
UNAUTHENTICATED without the key; grpc.health.v1 SERVING without a key; server reflection lists
the service; a cancelled stream leaves the server serving; SIGTERM exits cleanly.

  .venv/bin/python tests/e2e/test_grpc.py --binary build/server/longview
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY = "e2e-key-7"
AUTH = (("authorization", "Bearer " + API_KEY),)
RPC_TIMEOUT = 60  # seconds, every call
PROMPTS = ["Once upon a time", "The capital of France is"]
MAX_TOKENS = 32


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_stubs(tmp):
    rc = protoc.main(["grpc_tools.protoc", "-I" + os.path.join(REPO, "proto"),
                      "--python_out=" + tmp, "--grpc_python_out=" + tmp,
                      os.path.join(REPO, "proto", "longview.proto")])
    if rc != 0:
        raise RuntimeError("grpc_tools.protoc failed with %d" % rc)
    sys.path.insert(0, tmp)
    import longview_pb2  # noqa: E402
    import longview_pb2_grpc  # noqa: E402
    return longview_pb2, longview_pb2_grpc


class Failures:
    def __init__(self):
        self.messages = []

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.messages.append(what)


def reference_text(binary, model, prompt):
    out = subprocess.run([binary, "generate", "--model", model, "--prompt", prompt,
                          "--max-tokens", str(MAX_TOKENS), "--temperature", "0"],
                         capture_output=True, timeout=120, check=True)
    text = out.stdout.decode("utf-8")
    assert text.endswith("\n"), repr(text)
    return text[:-1]  # generate ends its output with one newline


def wait_serving(channel, proc, deadline):
    health = health_pb2_grpc.HealthStub(channel)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("longview serve exited with %d" % proc.returncode)
        try:
            r = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gRPC server not SERVING in time")


def stream_generate(stub, pb, request, metadata=AUTH):
    text, tokens, finish, messages = {}, {}, {}, []
    for resp in stub.Generate(request, metadata=metadata, timeout=RPC_TIMEOUT):
        messages.append(resp)
        for c in resp.choices:
            text[c.index] = text.get(c.index, "") + c.text
            tokens.setdefault(c.index, []).extend(c.token_ids)
            if c.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
                finish[c.index] = c.finish_reason
    return text, tokens, finish, messages


def run(args, pb, pb_grpc, f):
    refs = {p: reference_text(args.binary, args.model, p) for p in PROMPTS}
    grpc_port, http_port = free_port(), free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([args.binary, "serve", "--model", args.model, "--host", "127.0.0.1",
                             "--port", str(http_port), "--grpc-port", str(grpc_port),
                             "--api-key", API_KEY], stdout=log, stderr=subprocess.STDOUT)
    try:
        channel = grpc.insecure_channel("127.0.0.1:%d" % grpc_port)
        wait_serving(channel, proc, time.monotonic() + 60)
        stub = pb_grpc.GenerationStub(channel)

        # Greedy streaming equals `longview generate --temperature 0`.
        for prompt, want in refs.items():
            req = pb.GenerateRequest(prompt=pb.Prompt(text=prompt),
                                     sampling=pb.SamplingParams(temperature=0),
                                     stopping=pb.StoppingCriteria(max_tokens=MAX_TOKENS))
            text, tokens, finish, messages = stream_generate(stub, pb, req)
            f.check(text.get(0) == want, "Generate(%r) == longview generate: %r vs %r"
                    % (prompt, text.get(0), want))
            f.check(len(messages) > 1, "Generate(%r) streamed %d messages" % (prompt, len(messages)))
            f.check(0 in finish, "Generate(%r) finish reason set" % prompt)
            last = messages[-1]
            f.check(last.HasField("usage") and last.usage.completion_tokens == len(tokens[0]),
                    "Generate(%r) usage in the last message" % prompt)
            f.check(not any(m.HasField("usage") for m in messages[:-1]),
                    "Generate(%r) usage only in the last message" % prompt)

        # Tokenize / Detokenize round trip.
        ids = stub.Tokenize(pb.TokenizeRequest(text=PROMPTS[0]), metadata=AUTH,
                            timeout=RPC_TIMEOUT).token_ids
        back = stub.Detokenize(pb.DetokenizeRequest(token_ids=ids), metadata=AUTH,
                               timeout=RPC_TIMEOUT).text
        f.check(len(ids) > 1 and back == PROMPTS[0], "Tokenize/Detokenize round trip: %r" % back)

        models = stub.ListModels(pb.ListModelsRequest(), metadata=AUTH, timeout=RPC_TIMEOUT).models
        f.check(len(models) == 1 and models[0].id == args.model and models[0].max_context_length == 512,
                "ListModels: %s" % [(m.id, m.max_context_length) for m in models])

        # A bad request names the field.
        bad_attention = [
            (pb.AttentionConfig(mode="lizard"), "attention.mode"),
            (pb.AttentionConfig(mode="hip", top_k=12), "attention.top_k"),
            (pb.AttentionConfig(mode="hip", stages=[pb.HipStage(chunk=16, keep=64),
                                                    pb.HipStage(chunk=32, keep=32)]),
             "attention.stages[1]"),
            (pb.AttentionConfig(mode="hip", refresh=[32, 16]), "attention.refresh"),
            (pb.AttentionConfig(mode="hip", dense_layers=pb.LayerList(layers=[2, 2])),
             "attention.dense_layers[1]"),
            (pb.AttentionConfig(mode="hip", dense_top_k=4100), "attention.dense_top_k"),
            (pb.AttentionConfig(mode="sliding_window"), "attention.window"),
            (pb.AttentionConfig(mode="sliding_window", window=4, sinks=5), "attention.sinks"),
        ]
        for attention, field in bad_attention:
            try:
                stream_generate(stub, pb, pb.GenerateRequest(prompt=pb.Prompt(text="hi"),
                                                             attention=attention))
                f.check(False, "%s rejected" % field)
            except grpc.RpcError as e:
                f.check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.details(),
                        "%s rejected: %s %s" % (field, e.code(), e.details()))
        # StreamingLLM is served.
        _, sw_tokens, _, _ = stream_generate(stub, pb, pb.GenerateRequest(
            prompt=pb.Prompt(text="hi"), stopping=pb.StoppingCriteria(max_tokens=4),
            attention=pb.AttentionConfig(mode="sliding_window", window=8, sinks=2)))
        f.check(len(sw_tokens.get(0, [])) >= 1, "sliding_window with sinks generates: %s" % sw_tokens)
        # ... past the model's context (positions re-assigned); without sinks that is refused.
        _, long_tokens, _, _ = stream_generate(stub, pb, pb.GenerateRequest(
            prompt=pb.Prompt(text="hi"), sampling=pb.SamplingParams(temperature=0),
            stopping=pb.StoppingCriteria(max_tokens=512 + 40, ignore_eos=True),
            attention=pb.AttentionConfig(mode="sliding_window", window=16, sinks=2)))
        f.check(len(long_tokens.get(0, [])) == 552,
                "StreamingLLM past the context: %d tokens" % len(long_tokens.get(0, [])))
        try:
            stream_generate(stub, pb, pb.GenerateRequest(
                prompt=pb.Prompt(text="hi"), stopping=pb.StoppingCriteria(max_tokens=552),
                attention=pb.AttentionConfig(mode="sliding_window", window=16)))
            f.check(False, "a window without sinks past the context is refused")
        except grpc.RpcError as e:
            f.check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "context" in e.details(),
                    "window without sinks past the context: %s %s" % (e.code(), e.details()))

        # Auth: no key and a wrong key are refused.
        for md in [(), (("authorization", "Bearer nope"),)]:
            try:
                stub.ListModels(pb.ListModelsRequest(), metadata=md, timeout=RPC_TIMEOUT)
                f.check(False, "ListModels without the right key refused")
            except grpc.RpcError as e:
                f.check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                        "wrong/missing key: %s" % e.code())

        # Health (open) and reflection.
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "longview.v1.Generation"]:
            st = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT)
            f.check(st.status == health_pb2.HealthCheckResponse.SERVING,
                    "health %r SERVING" % service)
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        resp = next(iter(refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT)))
        names = sorted(s.name for s in resp.list_services_response.service)
        f.check("longview.v1.Generation" in names and "grpc.health.v1.Health" in names,
                "reflection lists %s" % names)

        # Cancel a long stream after its first message; the server keeps serving.
        call = stub.Generate(pb.GenerateRequest(
            prompt=pb.Prompt(text=PROMPTS[0]), sampling=pb.SamplingParams(temperature=0),
            stopping=pb.StoppingCriteria(max_tokens=400, ignore_eos=True),
            output=pb.OutputOptions(n=8)), metadata=AUTH, timeout=RPC_TIMEOUT)
        next(call)
        call.cancel()
        f.check(call.code() == grpc.StatusCode.CANCELLED, "cancelled stream: %s" % call.code())
        text, _, _, _ = stream_generate(stub, pb, pb.GenerateRequest(
            prompt=pb.Prompt(text=PROMPTS[0]), sampling=pb.SamplingParams(temperature=0),
            stopping=pb.StoppingCriteria(max_tokens=MAX_TOKENS)))
        f.check(text.get(0) == refs[PROMPTS[0]], "serving after a cancel")
        channel.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        f.check(proc.returncode == 0, "serve exited with %s after SIGTERM" % proc.returncode)
        if f.messages:
            log.seek(0)
            sys.stdout.write("--- longview serve output ---\n" + log.read().decode("utf-8", "replace"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the longview binary")
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "data", "golden", "llama"))
    args = ap.parse_args()
    f = Failures()
    with tempfile.TemporaryDirectory(prefix="lv_grpc_stubs_") as tmp:
        pb, pb_grpc = load_stubs(tmp)
        run(args, pb, pb_grpc, f)
    if f.messages:
        print("%d check(s) failed" % len(f.messages))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
