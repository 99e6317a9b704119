#!/usr/bin/env bash
# Issue 49, items 3 and 4: ddmlab's MAR beside LTH14/mar's own code on mar-fmnist, the official head (learned variance,
# affine norms) and the official optimisation (its weight-decay groups) in both, on the committed 3000-step kl-fmnist
# conv VAE (docs/results/mar/kl-fmnist-vae), mar-fmnist's 3447 steps, FID-N (class-balanced, K = 64, 100 head steps,
# temperature 1) against the first N test images, every FID line appended to OUT/fid.jsonl.
#   1. ddmlab trainings, seeds 0 and 1 (OUT/ddmlab-seed{0,1});
#   3. on ddmlab-seed0's EMA weights: ddmlab's sampler and the official sample_tokens (bench/mar_official.py), w = 1
#      and 3, sampling seeds 0 and 1, the official tokens decoded by the same tokenizer (`ddmlab tokenizer decode`);
#   4. the official model and training step on the same tokens (`ddmlab tokenizer encode`, a posterior sample per
#      step), seeds 0 and 1, mar-fmnist's settings; their EMA through both samplers at w = 1, beside ddmlab's two
#      trainings through the same samplers.
# Usage: OFFICIAL=CHECKOUT-OF-LTH14-MAR PYTHON=VENV/bin/python bench/mar_parity.sh [OUT] [STOP_AFTER_MIN]
# Resumable: every step whose output exists is skipped; a training stopped by STOP_AFTER_MIN continues on the next call.
set -euo pipefail
OUT=${1:-runs/mar-parity}
STOP=${2:-600}
N=${N:-5000}
STEPS=${STEPS:-3447}
PRESET=${PRESET:-mar-fmnist}
K=${K:-64}
OFFICIAL=${OFFICIAL:?a checkout of LTH14/mar (commit fe470ac)}
PY=${PYTHON:-python3}
BIN=${DDMLAB:-./target/release/ddmlab}
KL_VAE=${KL_VAE:-docs/results/mar/kl-fmnist-vae}
OFFICIAL_HEAD=(--set mar.learn_variance=true --set mar.head_norm_affine=true --set train.decay_exempt=norms-biases-head)
mkdir -p "$OUT"
$BIN --version | tee "$OUT/binary.txt"

fid() {  # npz label
  if ! grep -qs "\"label\":\"$2\"" "$OUT/fid-labels.txt"; then
    $BIN fid "$1" fashion-mnist:test --n "$N" --pr --json "$OUT/fid.jsonl"
    echo "{\"label\":\"$2\"}" >> "$OUT/fid-labels.txt"
  fi
}

ddmlab_samples() {  # run tag w seed
  local npz=$OUT/samples/$2-ddmlab-w$3-s$4.npz
  [[ -e $npz ]] || $BIN sample --run "$1" --n "$N" --cfg "$3" --seed "$4" --mar-steps "$K" --steps 100 \
    --out "${npz%.npz}.png" --npz "$npz"
  fid "$npz" "$2 ddmlab-sampler w=$3 seed=$4"
}

official_samples() {  # run tag weights w seed
  local tok=$OUT/samples/$2-official-w$4-s$5.safetensors npz=$OUT/samples/$2-official-w$4-s$5.npz
  [[ -e $tok ]] || "$PY" bench/mar_official.py sample "$OFFICIAL" "$1" --weights "$3" --n "$N" --cfg "$4" --seed "$5" --num-iter "$K" \
    --out "$tok"
  [[ -e $npz ]] || $BIN tokenizer decode --run "$1" --tokens "$tok" --npz "$npz" --grid "${npz%.npz}.png"
  fid "$npz" "$2 official-sampler w=$4 seed=$5"
}
mkdir -p "$OUT/samples"

# 1. ddmlab's trainings.
for seed in 0 1; do
  run=$OUT/ddmlab-seed$seed
  if [[ ! -e $run/checkpoints/step-$(printf %06d "$STEPS") ]]; then
    if [[ -e $run/checkpoints/latest ]]; then resume=(--resume); else resume=(--tokenizer-from "$KL_VAE"); fi
    $BIN train --preset "$PRESET" --out "$run" --steps "$STEPS" --set "train.seed=$seed" "${OFFICIAL_HEAD[@]}" \
      --stop-after "$STOP" "${resume[@]}"
  fi
  [[ -e $run/checkpoints/step-$(printf %06d "$STEPS") ]] || { echo "stopped: run again to continue"; exit 0; }
  [[ -e $run/mar.safetensors ]] || $BIN export --run "$run" --layout mar -o "$run/mar.safetensors"
done

# 3. Two samplers, one set of weights.
for w in 1 3; do
  for s in 0 1; do
    ddmlab_samples "$OUT/ddmlab-seed0" ddmlab-seed0 "$w" "$s"
    official_samples "$OUT/ddmlab-seed0" ddmlab-seed0 "$OUT/ddmlab-seed0/mar.safetensors" "$w" "$s"
  done
done

# 3'. What the learned variance does at sampling: the same weights and draws with the posterior variance.
for w in 1 3; do
  npz=$OUT/samples/ddmlab-seed0-posterior-variance-w$w-s0.npz
  [[ -e $npz ]] || $BIN sample --run "$OUT/ddmlab-seed0" --n "$N" --cfg "$w" --seed 0 --mar-steps "$K" --steps 100 \
    --posterior-variance --out "${npz%.npz}.png" --npz "$npz"
  fid "$npz" "ddmlab-seed0 ddmlab-sampler posterior-variance w=$w seed=0"
done

# 4. The official training on the same tokens, and every training through both samplers at w = 1.
[[ -e $OUT/tokens-train.safetensors ]] || $BIN tokenizer encode --run "$OUT/ddmlab-seed0" --out "$OUT/tokens-train.safetensors"
for seed in 0 1; do
  weights=$OUT/official-seed$seed.safetensors
  [[ -e $weights ]] || "$PY" bench/mar_official.py train "$OFFICIAL" "$OUT/ddmlab-seed0" \
    --tokens "$OUT/tokens-train.safetensors" --steps "$STEPS" --seed "$seed" --out "$weights"
  run=$OUT/official-seed$seed-run
  [[ -e $run/checkpoints/latest ]] || $BIN import "$weights" --layout mar --preset "$PRESET" "${OFFICIAL_HEAD[@]}" \
    --tokenizer-from "$KL_VAE" --out "$run"
  official_samples "$OUT/ddmlab-seed0" "official-seed$seed" "$weights" 1 0
  ddmlab_samples "$run" "official-seed$seed" 1 0
done
ddmlab_samples "$OUT/ddmlab-seed1" ddmlab-seed1 1 0
official_samples "$OUT/ddmlab-seed1" ddmlab-seed1 "$OUT/ddmlab-seed1/mar.safetensors" 1 0
echo "done: $OUT/fid.jsonl"
