#!/usr/bin/env python3
"""Writes the GGUF test files of tests/data/gguf/ with the `gguf` package (llama.cpp's Python
reader/writer, from PyPI) as the independent reference:

  quant_blocks.gguf   one [2, 512] tensor per supported type (F32, F16, BF16, Q8_0, Q4_0, Q4_1,
                      Q4_K, Q5_K, Q6_K) made of seeded random blocks (scales kept finite), each
                      followed by "<name>.ref": gguf.quants.dequantize of the same bytes, F32.
  tiny_llama/         a seeded random Llama (hidden 32, 2 layers, 4 heads / 2 KV heads, vocab 128)
                      as a Hugging Face folder (config.json + model.safetensors) and as GGUF files
                      of the same weights: model-f32.gguf and model-q8_0.gguf, with q/k rows
                      permuted the way llama.cpp's converter stores them for its RoPE layout.

    .venv/bin/pip install -r tools/gguf/requirements.txt && .venv/bin/python tools/gguf/make_test_gguf.py
"""
import json
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, quants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "gguf")

# Bytes per block and where the fp16 scale fields sit in each block (offsets of 2-byte halves).
BLOCKS = {
    "Q8_0": (Q.Q8_0, 34, [0]),
    "Q4_0": (Q.Q4_0, 18, [0]),
    "Q4_1": (Q.Q4_1, 20, [0, 2]),
    "Q4_K": (Q.Q4_K, 144, [0, 2]),
    "Q5_K": (Q.Q5_K, 176, [0, 2]),
    "Q6_K": (Q.Q6_K, 210, [208]),
}


def random_blocks(rng, nbytes, num_blocks, half_offsets):
    raw = rng.integers(0, 256, size=(num_blocks, nbytes), dtype=np.uint8)
    for off in half_offsets:  # finite, moderate scales: |d| in [2^-10, 2^-2)
        halves = (rng.uniform(2.0 ** -10, 2.0 ** -2, size=num_blocks) *
                  rng.choice([-1.0, 1.0], size=num_blocks)).astype(np.float16)
        raw[:, off:off + 2] = halves.view(np.uint8).reshape(num_blocks, 2)
    return raw


def write_quant_blocks(path):
    rng = np.random.default_rng(20261203)
    w = GGUFWriter(path, "test")
    rows, cols = 2, 512
    dense = rng.standard_normal((rows, cols)).astype(np.float32)
    w.add_tensor("F32", dense)
    w.add_tensor("F32.ref", dense)
    w.add_tensor("F16", dense.astype(np.float16))
    w.add_tensor("F16.ref", dense.astype(np.float16).astype(np.float32))
    bf16 = (dense.view(np.uint32) >> 16).astype(np.uint16)
    bf16_bytes = bf16.view(np.uint8).reshape(rows, cols * 2)
    w.add_tensor("BF16", bf16_bytes, raw_shape=bf16_bytes.shape, raw_dtype=Q.BF16)
    w.add_tensor("BF16.ref", (bf16.astype(np.uint32) << 16).view(np.float32))
    for name, (qtype, nbytes, halves) in BLOCKS.items():
        block_elems = 256 if name.endswith("_K") else 32
        nblocks = rows * cols // block_elems
        raw = random_blocks(rng, nbytes, nblocks, halves).reshape(rows, -1)
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)  # shape in bytes
        ref = quants.dequantize(raw, qtype).astype(np.float32).reshape(rows, cols)
        w.add_tensor(name + ".ref", ref)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# The tiny Llama.
CFG = dict(vocab=128, hidden=32, inter=64, layers=2, heads=4, kv_heads=2, context=256,
           rope_theta=10000.0, eps=1e-5)


def permute_for_gguf(w, n_head):
    """llama.cpp stores q/k rows of each head with the two RoPE halves interleaved: row
    h*hd + 2*i + j holds Hugging Face's row h*hd + j*hd/2 + i."""
    out_dim, in_dim = w.shape
    hd = out_dim // n_head
    return w.reshape(n_head, 2, hd // 2, in_dim).swapaxes(1, 2).reshape(out_dim, in_dim)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def write_tiny_llama(folder):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    c = CFG
    hd = c["hidden"] // c["heads"]

    def lin(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    hf = {"model.embed_tokens.weight": rng.standard_normal((c["vocab"], c["hidden"])).astype(
        np.float32)}
    for l in range(c["layers"]):
        p = f"model.layers.{l}."
        hf[p + "input_layernorm.weight"] = norm(c["hidden"])
        hf[p + "self_attn.q_proj.weight"] = lin(c["heads"] * hd, c["hidden"])
        hf[p + "self_attn.k_proj.weight"] = lin(c["kv_heads"] * hd, c["hidden"])
        hf[p + "self_attn.v_proj.weight"] = lin(c["kv_heads"] * hd, c["hidden"])
        hf[p + "self_attn.o_proj.weight"] = lin(c["hidden"], c["heads"] * hd)
        hf[p + "post_attention_layernorm.weight"] = norm(c["hidden"])
        hf[p + "mlp.gate_proj.weight"] = lin(c["inter"], c["hidden"])
        hf[p + "mlp.up_proj.weight"] = lin(c["inter"], c["hidden"])
        hf[p + "mlp.down_proj.weight"] = lin(c["hidden"], c["inter"])
    hf["model.norm.weight"] = norm(c["hidden"])
    hf["lm_head.weight"] = lin(c["vocab"], c["hidden"])
    write_safetensors(os.path.join(folder, "model.safetensors"), hf)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": c["vocab"], "hidden_size": c["hidden"], "intermediate_size": c["inter"],
        "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"],
        "num_key_value_heads": c["kv_heads"], "max_position_embeddings": c["context"],
        "rms_norm_eps": c["eps"], "rope_theta": c["rope_theta"], "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for suffix, qtype in (("f32", None), ("q8_0", Q.Q8_0)):
        w = GGUFWriter(os.path.join(folder, f"model-{suffix}.gguf"), "llama")
        w.add_name("tiny-llama")
        w.add_context_length(c["context"])
        w.add_embedding_length(c["hidden"])
        w.add_block_count(c["layers"])
        w.add_feed_forward_length(c["inter"])
        w.add_head_count(c["heads"])
        w.add_head_count_kv(c["kv_heads"])
        w.add_rope_freq_base(c["rope_theta"])
        w.add_layer_norm_rms_eps(c["eps"])
        w.add_rope_dimension_count(hd)
        w.add_vocab_size(c["vocab"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)

        def put(name, arr, quantize):
            if quantize and qtype is not None:
                packed = quants.quantize(arr, qtype)
                w.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)
            else:
                w.add_tensor(name, arr)

        put("token_embd.weight", hf["model.embed_tokens.weight"], True)
        for l in range(c["layers"]):
            for hf_name, g_name in names.items():
                t = hf[f"model.layers.{l}.{hf_name}.weight"]
                if hf_name == "self_attn.q_proj":
                    t = permute_for_gguf(t, c["heads"])
                elif hf_name == "self_attn.k_proj":
                    t = permute_for_gguf(t, c["kv_heads"])
                put(f"blk.{l}.{g_name}.weight", t, not g_name.endswith("norm"))
        put("output_norm.weight", hf["model.norm.weight"], False)
        put("output.weight", hf["lm_head.weight"], True)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    write_quant_blocks(os.path.join(OUT, "quant_blocks.gguf"))
    write_tiny_llama(os.path.join(OUT, "tiny_llama"))
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
