#!/usr/bin/env python3
"""Makes the byte-level BPE test tokenizers and their reference ids (tests/data/tokenizers/).

Trains small BPE tokenizers with Hugging Face `tokenizers` on the committed text
tests/data/tokenizers/train.txt, one per family configuration (GPT-2, Llama 3, Qwen2, SmolLM,
plus variants for add_prefix_space, byte fallback and <unk>), saves each as <name>/tokenizer.json
(with tokenizer_config.json where the family ships one), writes the test corpus corpus.jsonl and,
for every tokenizer, <name>/reference.jsonl: the ids `tokenizers` gives for each corpus line,
and the decode where it is not the line itself. The C++ tests only read these files.

    .venv/bin/python tools/golden/make_bpe_tokenizers.py [--out tests/data/tokenizers]

Needs `tokenizers` (tools/requirements-test.txt). Deterministic: the same version of
`tokenizers` writes the same files.
"""
import argparse
import json
import os
import random
import unicodedata

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

# The pre-tokenizer patterns of the published tokenizer.json files.
GPT2_PATTERN = None  # ByteLevel's built-in regex
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

VOCAB_SIZE = 1000
NUM_SPECIAL_LINES = 24  # corpus lines whose add_special=True ids are recorded too


def train(tok, lines, special_tokens, vocab_size=None, byte_level=True):
    kwargs = dict(vocab_size=vocab_size or VOCAB_SIZE, special_tokens=special_tokens,
                  show_progress=False)
    if byte_level:
        kwargs["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    else:
        # Rarer characters are left to byte fallback / <unk>. The trainer's own limit_alphabet
        # breaks ties between equally frequent characters at random: choose them here.
        counts = {}
        for line in lines:
            for ch in line:
                counts[ch] = counts.get(ch, 0) + 1
        keep = set(sorted(counts, key=lambda ch: (-counts[ch], ch))[:150])
        lines = ["".join(ch for ch in line if ch in keep) for line in lines]
    tok.train_from_iterator(lines, trainers.BpeTrainer(**kwargs))
    return tok


def byte_level_tokenizer(pre, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    return tok


def split_then_bytes(pattern):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def make_gpt2(lines):
    tok = byte_level_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    train(tok, lines, ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    # GPT-2 marks <|endoftext|> normalized; RoBERTa's <mask> strips the space on its left; a
    # non-special token that only matches a whole word.
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True),
                            AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("[NOTE]", single_word=True, normalized=False)])
    return tok, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}


def make_gpt2_prefix(gpt2):
    tok = Tokenizer.from_str(gpt2.to_str())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    return tok, None


def make_llama3(lines):
    tok = byte_level_tokenizer(split_then_bytes(LLAMA3_PATTERN), ignore_merges=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>"]
    train(tok, lines, specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    # Llama 3's vocabulary has whole words that its merges never build (it came from tiktoken),
    # which is why it sets ignore_merges. Give this one such words too: pre-tokens of the text
    # that the merges split into several tokens.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    counts = {}
    for line in lines:
        for piece, _ in tok.pre_tokenizer.pre_tokenize_str(line):
            counts[piece] = counts.get(piece, 0) + 1
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
             if len(tok.model.tokenize(w)) > 2 and w not in vocab]
    next_id = max(list(vocab.values()) + [t["id"] for t in spec["added_tokens"]]) + 1
    for i, w in enumerate(words[:40]):
        vocab[w] = next_id + i
    tok = Tokenizer.from_str(json.dumps(spec))
    # A special token that swallows the whitespace on its right.
    tok.add_special_tokens([AddedToken("<|python_tag|>", special=True, rstrip=True,
                                       normalized=False)])
    return tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}


def make_qwen2(lines):
    tok = byte_level_tokenizer(split_then_bytes(QWEN2_PATTERN), normalizer=normalizers.NFC())
    train(tok, lines, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Qwen2.5 ships these as non-special added tokens; one more whose text NFC changes.
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False),
                    AddedToken("</tool_call>", special=False, normalized=False),
                    AddedToken("cafe\u0301!", special=False, normalized=True)])
    return tok, {"bos_token": None, "eos_token": "<|im_end|>", "add_prefix_space": False}


def make_smollm(lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok = byte_level_tokenizer(pre)
    train(tok, lines, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


def make_fallback(lines, byte_fallback):
    """A BPE over characters (no byte-level mapping): rare characters become <0xXX> byte tokens
    (byte_fallback) or one fused <unk>."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=byte_fallback,
                               fuse_unk=not byte_fallback))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated",
                                             invert=False)
    train(tok, lines, ["<unk>", "<s>", "</s>"], vocab_size=600, byte_level=False)
    spec = json.loads(tok.to_str())
    if byte_fallback:
        vocab = spec["model"]["vocab"]
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
        spec["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                                                            {"type": "Fuse"}]}
    else:
        spec["decoder"] = {"type": "Fuse"}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {
            "<s>": {"id": "<s>", "ids": [tok.token_to_id("<s>")], "tokens": ["<s>"]},
            "</s>": {"id": "</s>", "ids": [tok.token_to_id("</s>")], "tokens": ["</s>"]},
        },
    }
    return Tokenizer.from_str(json.dumps(spec)), {"bos_token": "<s>", "eos_token": "</s>"}


# --- The corpus -----------------------------------------------------------------------------

HANDWRITTEN = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Café, naïve résumé; Ångström über Straße. ¿Qué tal?",
    "日本語のテキストと中文文本、还有한국어.",
    "Emoji: 😀🎉 thumbs 👍🏽 and a family 👨‍👩‍👧 done",
    "ZWJ runs: 👩‍💻🧑🏿‍🚀👨‍❤️‍👨 🏳️‍🌈 🏴‍☠️ and flags 🇩🇪🇫🇷🇬🇧 keycaps 1️⃣#️⃣",
    "Mixed: x = 3.14 → ∞ ≠ 42, €5 🚀!",
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "a\n\nb\n\n\nc",
    "trailing spaces   ",
    "   leading spaces",
    "tabs\tand\t\ttabs\t",
    "line one\r\nline two\rline three\n",
    "mixed \t \n \r\n whitespace \u00a0 nbsp \u3000 ideographic \u2028 line sep \u2029 para",
    "NEL\u0085next, VT\u000bnext, FF\u000cnext, FS\u001cnext",
    "zero width\u200bspace, joiner\u200d, non-joiner\u200c, BOM\ufeff, word joiner\u2060",
    "digits 0 12 123 1234 12345 123456 1234567 12345678901234567890",
    "3.14159265358979 2,718,281 1e10 -42 +7 0x7fffffff 1_000_000",
    "Arabic-Indic ٠١٢٣٤٥٦٧٨٩ Devanagari ०१२३ fullwidth １２３ superscript ²³ roman Ⅻ",
    "I'm sure you're right; they've said we'll go, he'd know, it's done.",
    "I'M SURE YOU'RE RIGHT; THEY'VE SAID WE'LL GO, HE'D KNOW, IT'S DONE.",
    "Mixed case: I'M, You'Re, It'S, We'Ll, 'ſ (long s) and 'K (Kelvin sign).",
    "quotes ’s ‘t “double” «guillemets» 「かぎ」 'single' \"double\"",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "a <|endoftext|> b <|endoftext|><|endoftext|> c",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "look-alikes: <|endoftext| > < |endoftext|> <|ENDOFTEXT|> <|endoftext|>> <<|im_end|>",
    "<s> </s> <unk> <pad> [CLS] [SEP] [MASK] <mask> <|python_tag|>",
    "mask: the <mask> sat;    <mask>   on the mat<mask>",
    "python tag <|python_tag|>    code here <|python_tag|>\n\nnext",
    "notes: [NOTE] alone, x[NOTE]y inside, [NOTE]. and ([NOTE]) and [NOTE][NOTE]",
    "tool calls: <tool_call>{\"name\": \"f\"}</tool_call> and <tool_call >",
    "nfc: cafe\u0301! cafe\u0301 café! e\u0301 a\u0308 o\u0302 \u212b \u2126 \u00c5 A\u030a",
    "decomposed Hangul: \u1112\u1161\u11ab\u1100\u1173\u11af composed: 한글",
    "combining only: \u0301\u0302\u0303 and a\u0301\u0302\u0303 stacked",
    "replacement char \ufffd and private use \ue000\uf8ff and noncharacters \ufdd0\uffff",
    "looks invalid: \\xff\\xfe \\u0000 %C3%28 &#xD800; \\ud83d",
    "control chars: \u0001\u0002\u0007\u001b[31mred\u001b[0m\u007f",
    "NUL inside: a\u0000b",
    "astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𝟙𝟚𝟛 𓀀𓀁 𐍈 🀄 𝄞",
    "CJK ext B: 𠀀𠀁𠀂 and compatibility ideographs 豈更車",
    "newer Unicode: CJK ext H x\U00031350\U00031351y ext I a\U0002EBF0, \u1C89\uA7CBletters, "
    "'\U00031350 12\U00010D40\U00010D41\U00010D42 3 digits, Mongolian vowel separator a\u180Eb, "
    "!\U00031350 ?\u1C89",
    "def f(x):\n    return x ** 2  # square\n",
    "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "if (a && b || !c) { x += y << 2; } else { z = a ? b : c; }",
    "    indented with four spaces\n        and eight\n\t\tand two tabs",
    "path/to/file.txt C:\\Users\\name https://example.com/a?b=c&d=e#frag",
    "email: someone@example.com, handle @user, hashtag #tag, price $9.99",
    "punctuation runs: !!! ??? ... --- *** ### ((( ))) ;;; ::: ,,, ''' \"\"\"",
    "math: ∀x∈ℝ: x² ≥ 0; ∑ᵢ aᵢ = ∫ f(x) dx; α β γ δ ε",
    "Русский текст с цифрами 123 и знаками препинания!",
    "Ελληνικά: Η γρήγορη καφέ αλεπού.",
    "العربية: النص من اليمين إلى اليسار ١٢٣",
    "עברית: טקסט מימין לשמאל",
    "हिन्दी: देवनागरी लिपि में पाठ",
    "ไทย: ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Tiếng Việt: Chữ Quốc ngữ có dấu",
    "ქართული ანბანი and Հայերեն and አማርኛ and ᏣᎳᎩ",
    "a" * 300,
    "ab" * 150,
    " " * 200 + "x",
    "\n" * 50,
    "1" * 100,
    "😀" * 40,
    "中" * 120,
    "x" + "\t" * 30 + "y",
]

# Characters for random lines: grouped so that the generator mixes scripts, whitespace kinds,
# digits, punctuation, emoji pieces and special-token fragments.
POOLS = [
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    list("0123456789"),
    list(" " * 8 + "\t\n\r"),
    list("\u00a0\u2000\u2009\u200a\u202f\u205f\u3000\u2028\u2029\u0085\u000b\u000c\u180e\u200b"),
    list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    list("'’sStTmMdD"),
    list("éèêëàâäôöûüçñßøåæœÉÀÇÑ"),
    list("\u0301\u0308\u0302\u0327\u030a"),
    list("АБВГДабвгдежзийклмнопрстуфхцчшщъыьэюя"),
    list("αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ"),
    list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年日本語한국어"),
    list("あいうえおかきくけこアイウエオカキクケコー"),
    list("ابتثجحخدذرزسشصضطظعغفقكلمنهوي٠١٢٣"),
    list("אבגדהוזחטיכלמנסעפצקרשת"),
    list("कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं०१२"),
    list("กขคงจฉชซญดตถทนบปผพฟภมยรลวศษสหอฮะาิีึืุูเแโใไ่้๊๋"),
    ["😀", "🎉", "👍", "🏽", "🏿", "\u200d", "\ufe0f", "👨", "👩", "👧", "❤", "🇺", "🇸", "🚀",
     "🐍", "🦀", "1️⃣", "🏳"],
    ["𝔘", "𝐁", "𝟙", "𓀀", "𐍈", "𠀀", "\ue000", "\ufffd", "①", "½", "Ⅻ", "²", "１", "Ａ"],
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>",
     "<|python_tag|>", "<mask>", "[NOTE]", "<tool_call>", "</tool_call>", "<s>", "</s>",
     "<unk>", "<|", "|>", "cafe\u0301!", "<0x41>"],
    [" the", " and", " of", " to", "ing", "tion", " is", "'s", "'ll", "'RE", " 123", "\n\n",
     "    ", "\t\t", "  ", " .", "...", "://", "==", "->", "{}", "()"],
]


def random_line(rng):
    n = rng.randint(1, 60)
    pools = rng.sample(range(len(POOLS)), rng.randint(1, 4))
    return "".join(rng.choice(POOLS[rng.choice(pools)]) for _ in range(n))


def make_corpus():
    rng = random.Random(20261203)
    lines = list(HANDWRITTEN)
    # Lines of the training text (tokenize into longer merges) and random mixtures.
    with open(os.path.join(os.path.dirname(__file__), "../../tests/data/tokenizers/train.txt"),
              encoding="utf-8") as f:
        train_lines = [l for l in f.read().split("\n") if l.strip()]
    lines += rng.sample(train_lines, 60)
    lines += [random_line(rng) for _ in range(420)]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                  "../../tests/data/tokenizers"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    with open(os.path.join(out, "train.txt"), encoding="utf-8") as f:
        train_lines = f.read().split("\n")

    gpt2, gpt2_config = make_gpt2(train_lines)
    made = {
        "gpt2": (gpt2, gpt2_config),
        "gpt2_prefix": make_gpt2_prefix(gpt2),
        "llama3": make_llama3(train_lines),
        "qwen2": make_qwen2(train_lines),
        "smollm": make_smollm(train_lines),
        "fallback": make_fallback(train_lines, byte_fallback=True),
        "unk": make_fallback(train_lines, byte_fallback=False),
    }
    corpus = make_corpus()
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for line in corpus:
            f.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")

    for name, (tok, config) in made.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        spec = json.loads(tok.to_str())
        if name == "gpt2":
            # The legacy "a b" merges form (older tokenizer.json files); the others keep the
            # [a, b] list form that tokenizers >= 0.20 writes.
            spec["model"]["merges"] = [" ".join(m) for m in spec["model"]["merges"]]
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        cfg_path = os.path.join(d, "tokenizer_config.json")
        if config is not None:
            with open(cfg_path, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2)
                f.write("\n")
        elif os.path.exists(cfg_path):
            os.remove(cfg_path)
        with open(os.path.join(d, "reference.jsonl"), "w", encoding="utf-8") as f:
            for i, line in enumerate(corpus):
                ids = tok.encode(line, add_special_tokens=False).ids
                row = {"ids": ids}
                decoded = tok.decode(ids, skip_special_tokens=True)
                if decoded != line:
                    row["decoded"] = decoded
                if i < NUM_SPECIAL_LINES:
                    row["ids_special"] = tok.encode(line, add_special_tokens=True).ids
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"{name}: vocab {tok.get_vocab_size()}, {len(corpus)} reference lines")

    # ignore_merges must matter for the Llama 3 tokenizer, or its test could not fail.
    llama3 = made["llama3"][0]
    spec = json.loads(llama3.to_str())
    spec["model"]["ignore_merges"] = False
    plain = Tokenizer.from_str(json.dumps(spec))
    differ = sum(llama3.encode(l, add_special_tokens=False).ids !=
                 plain.encode(l, add_special_tokens=False).ids for l in corpus)
    print(f"llama3: ignore_merges changes {differ} corpus lines")
    assert differ > 0
    print(f"tokenizers {tokenizers.__version__}, unicodedata {unicodedata.unidata_version}")


if __name__ == "__main__":
    main()
