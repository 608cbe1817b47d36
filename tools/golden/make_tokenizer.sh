#!/usr/bin/env bash
# Trains the small sentencepiece tokenizer the tests and golden checkpoints share.
# Text: Genesis and Exodus of the King James Bible (public domain, Debian's bible-kjv) plus a
# few lines with accented letters, CJK and emoji so that byte fallback is exercised.
# Usage: tools/golden/make_tokenizer.sh [OUT_DIR]     (default tests/data/tokenizer)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-tests/data/tokenizer}"
mkdir -p "$out"
for p in bible-kjv sentencepiece; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { apt-get update -qq && apt-get install -y -qq "$p"; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
COLUMNS=100000 bible -l100000 "Genesis1:1-50:26" "Exodus1:1-40:38" | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' >"$work/corpus.txt"
cat >>"$work/corpus.txt" <<'TXT'
The café on the corner serves crème brûlée and a naïve rosé.
Zoë and Chloë met at the façade of the old théâtre in Zürich.
東京は日本の首都です。
こんにちは世界
Привет, мир!
The weather today: ☀️ then 🌧️, later 🌈.
TXT
spm_train --input="$work/corpus.txt" --model_prefix="$work/tok" --vocab_size=512 \
  --model_type=bpe --byte_fallback=true --character_coverage=1.0 --split_digits=true \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1 >"$work/train.log" 2>&1
cp "$work/tok.model" "$out/tokenizer.model"
cat >"$out/tokenizer_config.json" <<'JSON'
{
  "add_bos_token": true,
  "add_eos_token": false,
  "bos_token": "<s>",
  "eos_token": "</s>",
  "unk_token": "<unk>",
  "tokenizer_class": "LlamaTokenizer",
  "model_max_length": 4096
}
JSON
echo "wrote $out/tokenizer.model ($(stat -c %s "$out/tokenizer.model") bytes)"
