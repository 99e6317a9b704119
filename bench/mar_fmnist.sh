#!/usr/bin/env bash
# MAR's comparisons on Fashion-MNIST (issue 12), every model on the one conv KL-VAE latent (64 tokens of 2) and the
# same number of training steps (those that a BUDGET-minute time budget gives mar-fmnist on this machine), then FID-N
# (EMA, class-balanced, against the test split):
#   mar-fmnist                         Diffusion Loss, bidirectional, random order (fits the conv VAE first)
#   mar-fmnist-ar-random / -ar-raster  causal attention, random / raster order (MAR's Table 1)
#   mar-fmnist-l2                      L2 regression head (MAR's Table 2: FID > 100 in the paper)
#   mar-fmnist-ce / -vq                256-code k-means codebook: cross-entropy, or Diffusion Loss on the codes
#   dit-fmnist-kl                      the DiT of the same width and depth on the same latent, for sampling speed
# then mar-fmnist's K sweep (8/16/32/64) and temperature sweep (0.8-1.1) at guidance SWEEP_CFG.
# Usage: bench/mar_fmnist.sh [OUT_DIR] [STOP_AFTER_MIN]
#   Every run is resumable: run the script again after a stop (--stop-after STOP_AFTER_MIN per call of `train`).
#   N (default 5000) images per FID; CFGS (default 1,3) guidance scales of the comparison; SWEEP_CFG (default 3);
#   BUDGET (default 55) minutes of mar-fmnist's training, which sets every run's step count.
set -euo pipefail
OUT=${1:-runs/mar}
STOP=${2:-600}
N=${N:-5000}
CFGS=${CFGS:-1,3}
SWEEP_CFG=${SWEEP_CFG:-3}
BUDGET=${BUDGET:-55}
BIN=${DDMLAB:-./target/release/ddmlab}
mkdir -p "$OUT"

train() {  # preset run [extra args]
  local preset=$1 run=$2
  shift 2
  if [[ -e $run/checkpoints/latest ]]; then resume=--resume; else resume=; fi
  $BIN train --preset "$preset" --out "$run" --stop-after "$STOP" $resume "$@"
}

finished() {  # run: true when its latest checkpoint is its last step
  python3 - "$1" <<'EOF'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
latest = run / "checkpoints" / "latest"
if not latest.exists():
    sys.exit(1)
state = json.loads((run / "checkpoints" / latest.read_text().strip() / "state.json").read_text())
sys.exit(0 if state.get("step") == state.get("total_steps") else 1)
EOF
}

train mar-fmnist "$OUT/mar-fmnist" --time-budget "$BUDGET"
finished "$OUT/mar-fmnist" || { echo "mar-fmnist stopped: run the script again"; exit 0; }
STEPS=$(sed -n '/^\[train\]/,/^\[/s/^steps = //p' "$OUT/mar-fmnist/config.toml")
for preset in mar-fmnist-ar-random mar-fmnist-ar-raster mar-fmnist-l2 mar-fmnist-ce mar-fmnist-vq dit-fmnist-kl; do
  train "$preset" "$OUT/$preset" --tokenizer-from "$OUT/mar-fmnist" --steps "$STEPS"
  finished "$OUT/$preset" || { echo "$preset stopped: run the script again"; exit 0; }
done

$BIN gen-eval --run "$OUT/mar-fmnist" --cfg "$CFGS" --n "$N"
for preset in mar-fmnist-ar-random mar-fmnist-ar-raster mar-fmnist-l2 mar-fmnist-ce mar-fmnist-vq; do
  $BIN gen-eval --run "$OUT/$preset" --cfg "$CFGS" --n "$N"
done
$BIN gen-eval --run "$OUT/dit-fmnist-kl" --cfg "$CFGS" --n "$N"
$BIN gen-eval --run "$OUT/mar-fmnist" --cfg "$SWEEP_CFG" --n "$N" --mar-steps 8,16,32,64
$BIN gen-eval --run "$OUT/mar-fmnist" --cfg "$SWEEP_CFG" --n "$N" --temperature 0.8,0.9,1.0,1.1
$BIN sample --run "$OUT/mar-fmnist" --n 100 --cfg "$SWEEP_CFG" --out "$OUT/mar-fmnist/grid.png"
for preset in mar-fmnist mar-fmnist-ar-random mar-fmnist-ar-raster mar-fmnist-l2 mar-fmnist-ce mar-fmnist-vq dit-fmnist-kl; do
  echo "== $preset"; cat "$OUT/$preset/fid.md"
done
