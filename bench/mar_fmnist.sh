#!/usr/bin/env bash
# MAR's comparisons on Fashion-MNIST (issue 12), every model on the one conv KL-VAE latent (64 tokens of 2) and the
# same number of training steps (those that a BUDGET-minute time budget gives mar-fmnist on this machine), then FID-N
# (EMA, class-balanced, K = 64 generation steps, 100 head steps, against the test split):
#   mar-fmnist                         Diffusion Loss, bidirectional, random order
#   mar-fmnist-ar-random / -ar-raster  causal attention, random / raster order (MAR's Table 1)
#   mar-fmnist-l2                      L2 regression head (MAR's Table 2: FID > 100 in the paper)
#   mar-fmnist-ce / -vq                256-code k-means codebook: cross-entropy, or Diffusion Loss on the codes
# then mar-fmnist's K sweep (8/16/32/64) and temperature sweep (0.8-1.1, at K = TAU_K) at guidance SWEEP_CFG, and the table of
# them all (bench/mar_table.py) in OUT_DIR/table.md.
# Usage: bench/mar_fmnist.sh [OUT_DIR] [STOP_AFTER_MIN]
#   Every run is resumable: run the script again after a stop (--stop-after STOP_AFTER_MIN per call of `train`); an
#   FID point already in a run's fid.json is not recomputed.
#   N (default 5000) images per FID; CFGS (default "1 3") guidance scales of the comparison; SWEEP_CFG (default 3);
#   TAU_K (default 64; the recorded sweep used 16, a third less time a point) the generation steps of the temperature sweep;
#   BUDGET (default 55) minutes of mar-fmnist's training, which sets every run's step count, unless STEPS is set
#   (STEPS=3447 repeats the recorded runs' count on any machine; SEED, default 0, is mar-fmnist's seed); KL_VAE (default
#   docs/results/mar/kl-fmnist-vae) the fitted conv VAE every run adopts (empty: mar-fmnist fits one first).
set -euo pipefail
OUT=${1:-runs/mar}
STOP=${2:-600}
N=${N:-5000}
CFGS=${CFGS:-1 3}
SWEEP_CFG=${SWEEP_CFG:-3}
TAU_K=${TAU_K:-64}
BUDGET=${BUDGET:-55}
STEPS=${STEPS:-}
SEED=${SEED:-0}
KL_VAE=${KL_VAE-docs/results/mar/kl-fmnist-vae}
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

evaluate() {  # run cfg [K] [temperature]: FID-N of one point (gen-eval --resume skips one fid.json already has)
  local run=$1 cfg=$2 k=${3:-64} tau=${4:-1}
  $BIN gen-eval --run "$run" --cfg "$cfg" --n "$N" --mar-steps "$k" --temperature "$tau" --resume
}

tok=()
[[ -n $KL_VAE ]] && tok=(--tokenizer-from "$KL_VAE")
if [[ -n $STEPS ]]; then length=(--steps "$STEPS"); else length=(--time-budget "$BUDGET"); fi
finished "$OUT/mar-fmnist" || train mar-fmnist "$OUT/mar-fmnist" "${length[@]}" --seed "$SEED" "${tok[@]}"
finished "$OUT/mar-fmnist" || { echo "mar-fmnist stopped: run the script again"; exit 0; }
STEPS=$(sed -n '/^\[train\]/,/^\[/s/^steps = //p' "$OUT/mar-fmnist/config.toml")
for cfg in $CFGS; do evaluate "$OUT/mar-fmnist" "$cfg"; done
for preset in mar-fmnist-ar-random mar-fmnist-ar-raster mar-fmnist-l2 mar-fmnist-ce mar-fmnist-vq; do
  finished "$OUT/$preset" || train "$preset" "$OUT/$preset" --tokenizer-from "$OUT/mar-fmnist" --steps "$STEPS"
  finished "$OUT/$preset" || { echo "$preset stopped: run the script again"; exit 0; }
  for cfg in $CFGS; do evaluate "$OUT/$preset" "$cfg"; done
done
for k in 8 16 32 64; do evaluate "$OUT/mar-fmnist" "$SWEEP_CFG" "$k"; done
for tau in 0.8 0.9 1 1.1; do evaluate "$OUT/mar-fmnist" "$SWEEP_CFG" "$TAU_K" "$tau"; done
[[ -e $OUT/mar-fmnist/grid.png ]] ||
  $BIN sample --run "$OUT/mar-fmnist" --n 100 --cfg "$SWEEP_CFG" --steps 100 --out "$OUT/mar-fmnist/grid.png"
python3 bench/mar_table.py "$OUT" | tee "$OUT/table.md"
