#!/usr/bin/env bash
# Counts the mode-related code of a revision: non-test source lines (C++, CUDA, proto) that name an
# attention mode's parameters or rules, and the files holding them. Used for issue 11's
# before/after figure (docs/ARCHITECTURE.md).
# Usage: tools/metrics/mode_code.sh [REV]   (default HEAD)
set -euo pipefail
cd "$(dirname "$0")/../.."
rev="${1:-HEAD}"
pattern='window_override|\bsinks\b|ForwardOptions|AttentionModeRequest|AttentionSettings|AttentionSpec|AttentionMode\b|SlidingWindowAttention|SinkWindowSelection|QueryPosition|ReleasableWindow|ForwardOptionsForMode|ParseAttention'
lines=$(git grep -h -n -E "$pattern" "$rev" -- '*.h' '*.cc' '*.cu' '*.cuh' '*.proto' ':!tests' ':!tools' | wc -l)
per_file=$(git grep -c -E "$pattern" "$rev" -- '*.h' '*.cc' '*.cu' '*.cuh' '*.proto' ':!tests' ':!tools' \
  | sed "s|^$rev:||" | awk -F: '{printf "  %4d %s\n", $2, $1}' | sort -rn)
outside=$(echo "$per_file" | grep -v -E ' (engine/attention|kernels|proto)[/_]' || true)
echo "$lines lines in $(echo "$per_file" | wc -l) files ($rev)"
echo "outside the mode's home (engine/attention), its kernels and the proto:" \
  "$(echo "$outside" | awk '{n+=$1} END {print n+0}') lines in $(echo "$outside" | grep -c . || true) files"
echo "$per_file"
