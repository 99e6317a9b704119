#!/usr/bin/env bash
# MAR's optimisation recipe on Fashion-MNIST (issue 12): each variant is `mar-fmnist` (conv KL-VAE latent, 64 tokens
# of 2, width 128, 4 + 4 blocks, head 3 x 256) plus the changes named, trained for the same number of steps STEPS on
# the same data order, then scored by its Diffusion Loss over the last fifth of training (the mean of the logged
# windows): at equal steps and one objective, the lower loss is the better density model, and the DiT sweep of issue
# 11 found its lr ranking by loss and by FID-1K to agree. CFG set: also FID-1K (K = 16, 100 head steps, EMA) at
# those guidance scales, for the variants that win on loss.
# Resumable: a finished variant is skipped, a stopped one resumes. Never run it beside another job.
# Usage: [STEPS=400] [CFG=3] [KL_VAE=docs/results/mar/kl-fmnist-vae] bench/mar_recipe.sh [OUT_DIR] [VARIANT...]
set -euo pipefail
OUT=${1:-runs/mar-recipe}
shift $(( $# > 1 ? 1 : $# ))
STEPS=${STEPS:-400}
KL_VAE=${KL_VAE:-docs/results/mar/kl-fmnist-vae}
BIN=${DDMLAB:-./target/release/ddmlab}
B64='train.batch_size=64'
# name | --set overrides. The peak lr is blr * batch / 256. mar-fmnist itself is batch 256 at lr 5e-4 (the `base`
# row trains STEPS / 4 steps of it: the same images as the batch-64 rows). MAR's schedule is warm-up then constant;
# `cos` decays it by a half-cycle cosine to 0.1x. `rep1` draws one noise level per masked token instead of four: its
# step is cheaper, so compare it at equal time, not here.
VARIANTS=$(cat <<EOF
base|train.steps=$(( STEPS / 4 ))
b64-lr5e-4|$B64 train.blr=0.002
b64-lr1e-3|$B64 train.blr=0.004
b64-lr2e-3|$B64 train.blr=0.008
b64-lr4e-3|$B64 train.blr=0.016
b64-lr8e-3|$B64 train.blr=0.032
lr2e-3-cos|$B64 train.blr=0.008 train.min_lr_frac=0.1
lr4e-3-cos|$B64 train.blr=0.016 train.min_lr_frac=0.1
lr2e-3-rep1|$B64 train.blr=0.008 mar.diffusion_repeat=1
EOF
)
mkdir -p "$OUT"
wanted=("$@")
score() {  # run: mean loss over the last fifth of the logged steps
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
last = rows[int(len(rows) * 0.8):]
print(f"{sum(r['loss'] for r in last) / len(last):.5f} over steps {last[0]['step']}-{last[-1]['step']}")
PY
}
while IFS='|' read -r name sets; do
  [[ -z $name ]] && continue
  if (( ${#wanted[@]} )) && [[ ! " ${wanted[*]} " == *" $name "* ]]; then continue; fi
  run="$OUT/$name"
  if [[ -e $run/checkpoints/latest ]]; then
    $BIN train --out "$run" --resume
  else
    args=(train --preset mar-fmnist --out "$run" --tokenizer-from "$KL_VAE" --set "train.steps=$STEPS")
    for s in $sets; do args+=(--set "$s"); done
    echo "== $name: ${args[*]}"
    $BIN "${args[@]}"
  fi
  if [[ -n ${CFG:-} && ! -e $run/fid.json ]]; then
    $BIN gen-eval --run "$run" --ckpt latest --cfg "$CFG" --n 1000 --mar-steps 16
  fi
done <<< "$VARIANTS"
for run in "$OUT"/*/; do
  [[ -e $run/metrics.jsonl ]] && echo "$(basename "$run"): loss $(score "$run")"
done
