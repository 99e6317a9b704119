#!/usr/bin/env bash
# Copy a run tree's results (configs, metrics, probe / FID / reconstruction rows, fitted tokenizers, tables, charts)
# without its checkpoints (nor the per-run plots, which the metrics redraw, nor each run's copy of a conv VAE, kept once under tokenizers/), so that they can be committed and a fresh machine can continue the tree
# (`cp -r DST SRC` then the same command: finished rows are not run again).
# Usage: tools/keep_results.sh SRC DST     e.g. tools/keep_results.sh runs/deconstruct docs/results/deconstruct
set -euo pipefail
SRC=${1:?source folder}
DST=$(mkdir -p "${2:?destination folder}" && cd "$2" && pwd)
cd "$SRC"
find . -type f \
  ! -path '*/checkpoints/*' ! -name '*.bpk' ! -name '*.tmp*' ! -name 'recon-reference.safetensors' \
  ! \( -path './runs/*' -name '*.png' \) \
  ! \( -path './runs/*' -name 'conv-vae.safetensors' \) \
  -print0 | while IFS= read -r -d '' f; do
  mkdir -p "$DST/$(dirname "$f")"
  cp -p "$f" "$DST/$f"
done
