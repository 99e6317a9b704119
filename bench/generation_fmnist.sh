#!/usr/bin/env bash
# The class-conditional DiT in pixels, in the patch-PCA latent and in the conv KL-VAE latent at equal DiT training
# time, then FID-N of each (DDIM-50, guidance 1 / 1.5 / 2, EMA, against the Fashion-MNIST test split).
# Usage: bench/generation_fmnist.sh [MINUTES] [OUT_DIR] [N] [CONV_VAE_FILE]
#   MINUTES        DiT training budget of each run (default 30; the schedule is fitted to it)
#   N              images per FID (default 5000)
#   CONV_VAE_FILE  a trained kl-fmnist conv-vae.safetensors to reuse (e.g. the one `ddmlab deconstruct --table 1`
#                  trained in runs/deconstruct/tokenizers/*/); without it dit-fmnist-kl trains its own first
#                  (outside the budget). Every run is resumable: run the script again after a stop.
set -euo pipefail
MIN=${1:-30}
OUT=${2:-runs/generation}
N=${3:-5000}
VAE=${4:-}
BIN=./target/release/ddmlab
mkdir -p "$OUT"
for preset in dit-fmnist dit-fmnist-pca dit-fmnist-kl; do
  run="$OUT/$preset"
  if [[ $preset == dit-fmnist-kl && -n $VAE && ! -e $run/conv-vae.safetensors ]]; then
    mkdir -p "$run" && cp "$VAE" "$run/conv-vae.safetensors"
  fi
  if [[ -e $run/checkpoints/latest ]]; then resume=--resume; else resume=; fi
  $BIN train --preset "$preset" --out "$run" --time-budget "$MIN" $resume
  $BIN gen-eval --run "$run" --ckpt latest --cfg 1,1.5,2 --n "$N"
done
for preset in dit-fmnist dit-fmnist-pca dit-fmnist-kl; do
  echo "== $preset"; cat "$OUT/$preset/fid.md"
done
