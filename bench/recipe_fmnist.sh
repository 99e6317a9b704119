#!/usr/bin/env bash
# The generation recipe sweep of issue 11: each variant is `dit-fmnist-eps` plus one change, trained for the same
# wall-clock budget on this machine (the schedule is fitted to it), then FID-1K (DDIM-50, EMA, class-balanced,
# against the first 1000 test images) at guidance 1, 2 and 3 with precision / recall. Resumable: run it again after
# a stop; a finished variant is skipped. Never run it beside another job: the budget is wall-clock time.
# Usage: [CFG=1,2,3] [STEPS=N] [KL_VAE=DIR] bench/recipe_fmnist.sh [MINUTES] [OUT_DIR] [VARIANT...]
#   MINUTES  training budget of every variant (default 15)
#   STEPS    equal-steps mode: every variant trains exactly N steps (its lr schedule fitted to N) and MINUTES is
#            ignored. Use it for the variants that do not change a step's cost (loss weight, target, schedule, lr,
#            EMA): this machine's speed drifts by ~25% within the hour, so a wall-clock budget would confound them.
#   VARIANT  names from the table below (default: all)
#   CFG      guidance scales of the FID-1K evaluation (default 1,2,3; each costs about 5 minutes here)
#   KL_VAE   a fitted conv VAE (a run folder or a kept tokenizers/<fit key>/ folder) for the kl-latent variant,
#            adopted with --tokenizer-from so that its fit stays outside the budget (without it the run fits its own)
set -euo pipefail
MIN=${1:-15}
OUT=${2:-runs/recipe}
shift $(( $# > 2 ? 2 : $# ))
BIN=./target/release/ddmlab
COSINE='denoise.noise={kind="cosine",s=0.008,max_beta=0.999}'
# name | preset | --set overrides (space-separated KEY=VALUE). The base is `dit-fmnist-eps`, dit-fmnist as it was
# before this sweep chose its recipe (batch 256, lr 5e-4, eps, linear betas, no long skips). The peak lr is
# blr * batch / 256: the batch variants raise blr so that the peak lr stays the base's 5e-4 (they change the batch and
# the step count, not the lr). The rec-* rows start from the sweep's winner, `dit-fmnist` (long skips, v, cosine,
# batch 64 at lr 8e-3), and vary what the sweep left at its default: EMA decay, width, depth, patch size.
VARIANTS=$(cat <<EOF
base|dit-fmnist-eps|
patch2|dit-fmnist-eps|model.patch=2 denoise.tokenizer.patch=2
wide|dit-fmnist-eps|model.width=192 model.cond_width=192 model.heads=6
deep|dit-fmnist-eps|model.depth=12 model.encoder_depth=6
v-pred|dit-fmnist-eps|denoise.target=v
cosine|dit-fmnist-eps|$COSINE
lr1e-3|dit-fmnist-eps|train.blr=0.001
batch128|dit-fmnist-eps|train.batch_size=128 train.blr=0.001
batch64|dit-fmnist-eps|train.batch_size=64 train.blr=0.002
ema0.9999|dit-fmnist-eps|train.ema_decay=0.9999
min-snr|dit-fmnist-eps|denoise.loss_weight={min-snr=5.0}
batch64-min-snr|dit-fmnist-eps|train.batch_size=64 train.blr=0.002 denoise.loss_weight={min-snr=5.0}
b64-lr1e-3|dit-fmnist-eps|train.batch_size=64 train.blr=0.004
b64-lr2e-3|dit-fmnist-eps|train.batch_size=64 train.blr=0.008
b64-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.002 denoise.target=v
b64-cosine-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.002 denoise.target=v $COSINE
b64-lr4e-3|dit-fmnist-eps|train.batch_size=64 train.blr=0.016
lr2e-3-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.008 denoise.target=v
lr2e-3-conv16|dit-fmnist-eps|train.batch_size=64 train.blr=0.008 model.conv_head=16
lr2e-3-long-skip|dit-fmnist-eps|train.batch_size=64 train.blr=0.008 model.long_skip=true
b64-lr8e-3|dit-fmnist-eps|train.batch_size=64 train.blr=0.032
lr4e-3-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.016 denoise.target=v
lr4e-3-cosine-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.016 denoise.target=v $COSINE
b64-lr16e-3|dit-fmnist-eps|train.batch_size=64 train.blr=0.064
lr8e-3-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.032 denoise.target=v
lr8e-3-cosine-v|dit-fmnist-eps|train.batch_size=64 train.blr=0.032 denoise.target=v $COSINE
long-skip|dit-fmnist-eps|model.long_skip=true
dit-fmnist|dit-fmnist|
rec-ema0.99|dit-fmnist|train.ema_decay=0.99
rec-ema0.9999|dit-fmnist|train.ema_decay=0.9999
rec-wide|dit-fmnist|model.width=192 model.cond_width=192 model.heads=6
rec-deep|dit-fmnist|model.depth=12 model.encoder_depth=6
rec-patch2|dit-fmnist|model.patch=2 denoise.tokenizer.patch=2
pca-latent|dit-fmnist-pca|
kl-latent|dit-fmnist-kl|
EOF
)
mkdir -p "$OUT"
wanted=("$@")
while IFS='|' read -r name preset sets; do
  [[ -z $name ]] && continue
  if (( ${#wanted[@]} )) && [[ ! " ${wanted[*]} " == *" $name "* ]]; then continue; fi
  run="$OUT/$name"
  if [[ -e $run/fid.json ]]; then echo "== $name: done"; continue; fi
  if [[ -n ${STEPS:-} ]]; then
    args=(train --preset "$preset" --out "$run" --set "train.steps=$STEPS")
  else
    args=(train --preset "$preset" --out "$run" --time-budget "$MIN")
  fi
  for s in $sets; do args+=(--set "$s"); done
  if [[ $preset == *-kl && -n ${KL_VAE:-} ]]; then args+=(--tokenizer-from "$KL_VAE"); fi
  if [[ -e $run/checkpoints/latest ]]; then args=(train --out "$run" --resume); fi
  echo "== $name: ${args[*]}"
  $BIN "${args[@]}"
  $BIN gen-eval --run "$run" --ckpt latest --cfg "${CFG:-1,2,3}" --n 1000
done <<< "$VARIANTS"
for run in "$OUT"/*/; do
  [[ -e $run/fid.md ]] && { echo "== $(basename "$run")"; cat "$run/fid.md"; }
done
