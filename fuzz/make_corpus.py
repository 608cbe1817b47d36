#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target: fuzz/corpus/<target>/<name>, a handful of small
valid inputs and edge cases each, made here by hand (no fetched data). Deterministic: running it
again rewrites the same files. The input formats are described at the top of each target.

    fuzz/make_corpus.py        # then commit fuzz/corpus/
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- openai_request_fuzzer: one byte for the API (even: completions, odd: chat), then the body.

def openai_request():
    t = "openai_request_fuzzer"
    completion = lambda body: b"0" + (body if isinstance(body, bytes) else body.encode())
    chat = lambda body: b"1" + (body if isinstance(body, bytes) else body.encode())
    write(t, "completion_minimal", completion('{"prompt": "hi"}'))
    write(t, "completion_every_field", completion(json.dumps({
        "model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
        "top_k": 5, "min_p": 0.1, "n": 2, "stop": ["a", "b"], "seed": 42, "stream": True,
        "stream_options": {"include_usage": True}, "logprobs": 3, "presence_penalty": 0.5,
        "frequency_penalty": -0.5, "repetition_penalty": 1.1, "user": "u", "ignore_eos": True,
        "best_of": 2, "suffix": "", "logit_bias": {}, "tools": [],
        "response_format": {"type": "text"}, "unknown": 1})))
    write(t, "completion_token_lists", completion('{"prompt": [[1, 2, 3], [4]], "max_tokens": 5}'))
    write(t, "completion_mixed_list", completion('{"prompt": ["a", [7, 8], "b"], "stop": "\\n"}'))
    write(t, "completion_sliding_window", completion(
        '{"prompt": "x", "longview": {"attention": {"mode": "sliding_window", "window": 16, '
        '"sinks": 4}}}'))
    write(t, "chat_minimal", chat('{"messages": [{"role": "user", "content": "Hello"}]}'))
    write(t, "chat_every_role", chat(json.dumps({"messages": [
        {"role": "system", "content": "Be terse."}, {"role": "developer", "content": "Really."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": None}, {"role": "tool", "content": "42"}],
        "max_completion_tokens": 9, "logprobs": True, "top_logprobs": 2})))
    # Edge cases: wrong types, out-of-range numbers, unsupported features, broken JSON.
    write(t, "edge_not_object", completion("[]"))
    write(t, "edge_truncated_json", chat('{"messages": [{"role": "user", "content": "x"'))
    write(t, "edge_huge_numbers", completion(
        '{"prompt": [4294967296], "n": 18446744073709551615, "seed": -9223372036854775808, '
        '"temperature": 1e400}'))
    write(t, "edge_content_part_types", chat(
        '{"messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]}'))
    write(t, "edge_response_format", completion(
        '{"prompt": "x", "response_format": {"type": ["json_object"]}}'))
    write(t, "edge_attention_types", completion(
        '{"prompt": "x", "longview": {"attention": {"mode": "sliding_window", "window": 1.5}}}'))
    write(t, "edge_empty", b"")


# --- grpc_request_fuzzer: a serialized longview.v1.GenerateRequest (proto/longview.proto).

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def vint(num, value):
    return field(num, 0, varint(value))


def string(num, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return field(num, 2, varint(len(data)) + data)


def double(num, value):
    return field(num, 1, struct.pack("<d", value))


def grpc_request():
    t = "grpc_request_fuzzer"
    text = lambda s: string(2, string(1, s))
    ids = lambda xs: string(2, string(2, string(1, b"".join(varint(x) for x in xs))))
    write(t, "text_prompt", string(1, "llama") + text("Once upon a time") + string(4, vint(1, 8)))
    write(t, "token_ids_every_option",
          ids([1, 5, 9])
          + string(3, double(1, 0.7) + double(2, 0.9) + vint(3, 40) + double(4, 0.05)
                   + vint(5, 42) + double(6, 0.5) + double(7, -0.5) + double(8, 1.1))
          + string(4, vint(1, 4) + string(2, "\n") + string(2, "The end") + vint(3, 1))
          + string(5, vint(1, 2) + vint(2, 3)))
    write(t, "sliding_window_sinks_long",
          text("abc") + string(4, vint(1, 100000))
          + string(6, string(1, "sliding_window") + vint(2, 16) + vint(3, 4)))
    write(t, "sliding_window_no_sinks",
          text("abc") + string(6, string(1, "sliding_window") + vint(2, 8)))
    # Edge cases: no prompt, ids outside the vocabulary, bad numbers, unknown modes.
    write(t, "edge_empty", b"")
    write(t, "edge_token_out_of_range", ids([1, 512]))
    write(t, "edge_negative_max_tokens", text("x") + string(4, vint(1, -5)))
    write(t, "edge_n_and_logprobs", ids([1]) + string(5, vint(1, 17) + vint(2, -1)))
    write(t, "edge_nan_temperature", ids([1]) + string(3, double(1, float("nan"))))
    write(t, "edge_unknown_mode", ids([1]) + string(6, string(1, "sparse") + vint(2, 4)))
    write(t, "edge_empty_stop", ids([1]) + string(4, string(2, "")))
    write(t, "edge_text_too_long", text("a" * 1100))


# --- chat_template_fuzzer: byte 0 = template (low 3 bits % 5; bit 3: custom BOS/EOS records
# first), then 0xff-separated records, each a role byte (% 5: system, developer, user,
# assistant, tool) and the content.

SYSTEM, DEVELOPER, USER, ASSISTANT, TOOL = range(5)
PLAIN, LLAMA2, LLAMA3, MISTRAL, CHATML = range(5)


def conversation(kind, messages, tokens=None):
    head = bytes([kind | (8 if tokens else 0)])
    records = [t.encode() for t in (tokens or [])]
    records += [bytes([role]) + content.encode("utf-8", "surrogateescape")
                for role, content in messages]
    return head + b"\xff".join(records)


def chat_template():
    t = "chat_template_fuzzer"
    talk = [(SYSTEM, "You are terse."), (USER, "Hi"), (ASSISTANT, "Hello!"),
            (USER, "Say </s> and <s> or <|im_start|>")]
    for kind, name in [(PLAIN, "plain"), (LLAMA2, "llama2"), (LLAMA3, "llama3"),
                       (MISTRAL, "mistral"), (CHATML, "chatml")]:
        write(t, f"{name}_conversation", conversation(kind, talk))
    write(t, "llama3_custom_tokens", conversation(
        LLAMA3, [(DEVELOPER, "d"), (USER, "u"), (TOOL, "t")], ["<|begin_of_text|>", "<|eot_id|>"]))
    write(t, "llama2_whitespace_system", conversation(
        LLAMA2, [(SYSTEM, "  \n"), (SYSTEM, ""), (USER, " \t ")]))
    write(t, "llama2_system_only", conversation(LLAMA2, [(SYSTEM, "only a system prompt")]))
    write(t, "mistral_assistant_first", conversation(MISTRAL, [(ASSISTANT, ""), (USER, "x")]))
    write(t, "edge_no_messages", bytes([CHATML]))
    write(t, "edge_nul_and_bad_utf8", conversation(CHATML, [(USER, "a\0b\udcc3(")]))
    write(t, "edge_empty_custom_tokens", conversation(LLAMA2, [(USER, "x")], ["", ""]))


# --- safetensors_fuzzer: byte 0 even: a safetensors file; odd: a model.safetensors.index.json
# beside the shards the target writes (a.safetensors: x, y; b.safetensors: z, e;
# bad.safetensors; dir/).

def safetensors_file(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h)) + h + data


def safetensors():
    t = "safetensors_fuzzer"
    f = lambda header, data=b"": b"\0" + safetensors_file(header, data)
    index = lambda obj: b"\1" + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    write(t, "every_dtype", f({
        "__metadata__": {"format": "pt"},
        "f32": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "bf16": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
        "f16": {"dtype": "F16", "shape": [2], "data_offsets": [32, 36]},
        "i64": {"dtype": "I64", "shape": [1], "data_offsets": [36, 44]},
        "bool": {"dtype": "BOOL", "shape": [3], "data_offsets": [44, 47]},
        "u16": {"dtype": "U16", "shape": [1], "data_offsets": [47, 49]}},
        struct.pack("<6f", 1, 2, 3, 4, 5, 6) + bytes(range(8)) + b"\x00\x3c\x00\xfc"
        + bytes(8) + b"\x01\x00\x01" + b"\xff\xff"))
    write(t, "scalar_and_empty", f({
        "s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        "e": {"dtype": "F16", "shape": [0, 5], "data_offsets": [4, 4]}}, struct.pack("<f", 7)))
    write(t, "header_only", f({}))
    write(t, "edge_truncated", b"\0" + b"\x10\0\0")
    write(t, "edge_header_past_end", b"\0" + struct.pack("<Q", 1 << 63) + b"{}")
    write(t, "edge_bad_json", f(b'{"a": {"dtype": "F32", '))
    write(t, "edge_overlap", f({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)))
    write(t, "edge_shape_mismatch", f({
        "a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}}, bytes(4)))
    write(t, "edge_huge_shape", f({
        "a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}))
    write(t, "regress_number_overflow", f(b'{"a": {"dtype": "F32", "shape": [1e400]}}'))
    write(t, "edge_unknown_dtype", f({"a": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}},
                                     b"\0"))
    write(t, "index_valid", index({"metadata": {"total_size": 30}, "weight_map": {
        "x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors", "e": "b.safetensors"}}))
    write(t, "index_partial", index({"weight_map": {"x": "a.safetensors"}}))
    write(t, "index_missing_shard", index({"weight_map": {"x": "c.safetensors"}}))
    write(t, "index_outside_folder", index({"weight_map": {"x": "../a.safetensors"}}))
    write(t, "index_bad_shard", index({"weight_map": {"x": "bad.safetensors", "y": "dir"}}))
    write(t, "index_wrong_shard", index({"weight_map": {"z": "a.safetensors"}}))


# --- model_config_fuzzer: the text of a config.json.

def model_config():
    t = "model_config_fuzzer"
    base = {"architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 64,
            "intermediate_size": 160, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
            "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "bfloat16"}
    cfg = lambda **kw: json.dumps({**base, **kw}, indent=1)
    write(t, "llama_old_dialect", cfg(rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64}, tie_word_embeddings=True))
    write(t, "llama_new_dialect", cfg(dtype="float32", head_dim=8, rope_parameters={
        "rope_theta": 10000.0, "rope_type": "linear", "factor": 2.0}))
    write(t, "mistral_window", cfg(architectures=["MistralForCausalLM"], sliding_window=16,
                                   rope_scaling={"type": "default"}))
    write(t, "qwen2_window_layers", cfg(architectures=None, model_type="qwen2",
                                        use_sliding_window=True, sliding_window=32,
                                        max_window_layers=1))
    write(t, "layer_types", cfg(layer_types=["sliding_attention", "full_attention",
                                             "sliding_attention"], sliding_window=8))
    write(t, "edge_not_object", "[1, 2]")
    write(t, "edge_empty_object", "{}")
    write(t, "edge_truncated", cfg()[:100])
    write(t, "edge_odd_head_dim", cfg(head_dim=7))
    write(t, "edge_bad_types", cfg(num_hidden_layers="3", rope_scaling=[1], eos_token_id=-1))
    write(t, "edge_huge_values", cfg(vocab_size=18446744073709551615, num_hidden_layers=2**31))
    write(t, "regress_layers_2pow31", cfg(num_hidden_layers=2**31))
    write(t, "regress_number_overflow", cfg()[:-2] + ',\n "rms_norm_eps": 1e4052\n}')


def main():
    for target in os.listdir(ROOT) if os.path.isdir(ROOT) else []:
        shutil.rmtree(os.path.join(ROOT, target))
    openai_request()
    grpc_request()
    chat_template()
    safetensors()
    model_config()


if __name__ == "__main__":
    main()
