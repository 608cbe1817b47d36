#!/usr/bin/env bash
# Prepares the training data of the embedded default model (see tools/train/README.md).
# Runs on the development machine (Debian 12, root, Debian's package archive reachable).
# Idempotent: installs only missing packages; rebuilds everything below from them.
#
#   tools/train/prepare_data.sh [OUT=.traindata] [WORK=.traindata-work] [VOCAB=8192]
#
# OUT  (carried to the GPU machine): tokenizer.model/.vocab, tokens/*.bin.xz, filler.txt.xz,
#      meta.json.  WORK (stays here): extracted text, tokenizer input, logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.traindata}"
work="${2:-.traindata-work}"
vocab="${3:-8192}"
PY=/usr/bin/python3   # Debian's interpreter, where python3-sentencepiece lives

pkgs=(bible-kjv bible-kjv-text sword-text-web diatheke dict-devil dict-jargon dict-gcide
      wordnet-base sentencepiece python3-sentencepiece xz-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

mkdir -p "$out" "$work/text"
echo "== extracting text into $work/text"
# King James Version (public domain in the US; Debian bible-kjv-text).
COLUMNS=100000 bible -l100000 "Genesis1:1-Revelation22:21" >"$work/kjv.raw"
# World English Bible, public domain (Debian sword-text-web, read with diatheke). Only the
# 66 books of the Protestant canon: the module's deuterocanonical books print with markup.
{ diatheke -b engWEB2015eb -f plain -k "Genesis 1:1-Malachi 4:6"
  diatheke -b engWEB2015eb -f plain -k "Matthew 1:1-Revelation 22:21"; } >"$work/web.raw"
"$PY" tools/train/extract_text.py --work "$work" --kjv "$work/kjv.raw" --web "$work/web.raw"

echo "== training the tokenizer (spm_train, BPE, vocab $vocab)"
"$PY" tools/train/build_tokens.py spm-input --work "$work"
spm_train --input="$work/spm_input.txt" --model_prefix="$work/tokenizer" \
  --vocab_size="$vocab" --model_type=bpe --byte_fallback=true --character_coverage=1.0 \
  --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --add_dummy_prefix=true \
  --allow_whitespace_only_pieces=true --max_sentence_length=4192 \
  --input_sentence_size=2000000 --shuffle_input_sentence=true --random_seed=42 \
  --num_threads="$(nproc)" >"$work/spm_train.log" 2>&1 ||
  { tail -20 "$work/spm_train.log"; exit 1; }
cp "$work/tokenizer.model" "$work/tokenizer.vocab" "$out/"

echo "== tokenizing into $out/tokens"
"$PY" tools/train/build_tokens.py encode --work "$work" --out "$out"
echo "== done: $(du -sh "$out" | cut -f1) in $out"
