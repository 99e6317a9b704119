#!/usr/bin/env bash
# ddmlab's multi-level l-DAE from the PyTorch implementation's initial weights (same seeds): is the gap the init?
while ! grep -q ALLDONE runs/i7/run.log; do sleep 10; done
B=./target/release/ddmlab
for seed in 0 1 2; do
  R=runs/i7/ddm-torchinit-multi-s$seed
  [[ -e $R/probe.json ]] && continue
  $B pretrain --preset ldae-fmnist --steps 400 --set train.seed=$seed --init-from runs/i7/torch-init-s$seed.safetensors --out $R > $R.log 2>&1 || { echo "failed $R"; continue; }
  $B probe --run $R --pool avg --no-baselines --knn-k 0 >> $R.log 2>&1
done
echo INITDONE
