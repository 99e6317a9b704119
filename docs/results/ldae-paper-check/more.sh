#!/usr/bin/env bash
B=./target/release/ddmlab
for seed in 4 5; do
  python3 bench/ldae_paper.py --data data/fashion-mnist --seed $seed --save-init runs/i7/torch-init-s$seed.safetensors
  for kind in own torchinit; do
    R=runs/i7/ddm-$kind-multi-s$seed
    extra=""; [[ $kind == torchinit ]] && extra="--init-from runs/i7/torch-init-s$seed.safetensors"
    $B pretrain --preset ldae-fmnist --steps 400 --set train.seed=$seed $extra --out $R > $R.log 2>&1
    $B probe --run $R --pool avg --no-baselines --knn-k 0 >> $R.log 2>&1
  done
done
echo MOREDONE
