#!/usr/bin/env bash
# Set up (idempotent), build the bundled workload, record it with BPF and report it
# offline into ./out: the recording, folded stacks, a top table and an SVG flame graph.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${BEE_VENV:-.venv}"
OUT="${1:-out}"
mkdir -p "$OUT"
gcc -O0 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-optimize-sibling-calls \
    -o "$OUT/chain" tests/fixtures/src/chain.c
"$VENV/bin/bee" record -F 499 -o "$OUT/chain.bee" -- "$OUT/chain" 3
"$VENV/bin/bee" info "$OUT/chain.bee"
"$VENV/bin/bee" report "$OUT/chain.bee" --format folded -o "$OUT/chain.folded"
"$VENV/bin/bee" report "$OUT/chain.bee" --format top -o "$OUT/chain.top.txt"
if "$VENV/bin/bee" report --help | grep -q svg; then
    "$VENV/bin/bee" report "$OUT/chain.bee" --format svg -o "$OUT/chain.svg"
fi
cat "$OUT/chain.top.txt"
echo "Outputs in $OUT/"
