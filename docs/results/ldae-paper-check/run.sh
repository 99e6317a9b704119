#!/usr/bin/env bash
# Item 7: ddmlab's multi-level l-DAE beside the from-paper PyTorch one, 400 steps.
set -u
B=./target/release/ddmlab
for seed in 0 1 2; do
  for noise in multi single; do
    R=runs/i7/ddm-$noise-s$seed
    if [[ ! -e $R/probe.json ]]; then
      extra=""
      [[ $noise == single ]] && extra='denoise.noise={kind="constant", sigma=0.5773502691896257}'
      $B pretrain --preset ldae-fmnist --steps 400 --set train.seed=$seed ${extra:+--set "$extra"} --out $R > $R.log 2>&1 || { echo "pretrain failed $R"; continue; }
      $B probe --run $R --pool avg --no-baselines --knn-k 0 >> $R.log 2>&1
      $B probe --run $R --pool avg --no-baselines --knn-k 0 --t 10 --noisy >> $R.log 2>&1
    fi
    P=runs/i7/torch-$noise-s$seed.json
    [[ -e $P ]] || python3 bench/ldae_paper.py --data data/fashion-mnist --steps 400 --seed $seed --noise $noise --json $P > runs/i7/torch-$noise-s$seed.log 2>&1
  done
done
echo ALLDONE
