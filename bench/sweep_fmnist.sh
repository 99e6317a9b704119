#!/usr/bin/env bash
# The measured sweep behind the ldae-fmnist defaults (patch size and latent dimension d).
# Every point trains for the same wall-clock budget (the schedule is fitted to it), on one
# thread, two points at a time, then is probed with the same protocol on a data subset.
# Usage: bench/sweep_fmnist.sh [MINUTES] [OUT_DIR] [POINT...]   (default 7 minutes, runs/sweep, the four
# points below; a POINT is "name patch d", e.g. "p7-d8 7 8"; points run in pairs).
set -euo pipefail
MIN=${1:-7}
OUT=${2:-runs/sweep}
BIN=./target/release/ddmlab
POINTS=("p4-d4 4 4" "p4-d8 4 8" "p7-d8 7 8" "p4-d2 4 2")
if (($# > 2)); then POINTS=("${@:3}"); fi
mkdir -p "$OUT"
train() {
  local name=$1 patch=$2 d=$3
  $BIN --threads 1 pretrain --preset ldae-fmnist --out "$OUT/$name" --time-budget "$MIN" \
    --set model.patch="$patch" --set denoise.tokenizer.patch="$patch" --set denoise.tokenizer.latent_dim="$d" --set train.checkpoint_every=100000 > "$OUT/$name.log" 2>&1
}
probe() {
  local name=$1
  $BIN --threads 1 probe --run "$OUT/$name" --no-baselines --train-limit 10000 --test-limit 5000 >> "$OUT/$name.log" 2>&1
}
for ((i = 0; i < ${#POINTS[@]}; i += 2)); do
  train ${POINTS[i]} & train ${POINTS[i+1]} & wait
  probe ${POINTS[i]%% *} & probe ${POINTS[i+1]%% *} & wait
done
for p in "${POINTS[@]}"; do
  name=${p%% *}
  echo "== $name"; grep -E "^l-DAE" "$OUT/$name.log" || true
done
