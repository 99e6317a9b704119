#!/bin/bash
# Equal-time generation comparison (issue 10): pixel vs PCA-latent vs conv-VAE-latent DiT, 20 min each, alone
# (the ladder, a cargo build and a feature job are stopped with SIGSTOP meanwhile and continued afterwards).
cd /work/main
B=target/release/ddmlab
for p in dit-fmnist dit-fmnist-pca dit-fmnist-kl; do
  echo "=== train $p $(date)"
  $B train --preset $p --time-budget 20 --out runs/gen-eq/$p > runs/gen-eq/$p.train.log 2>&1
  echo "=== done $p $(date) rc=$?"
done
pkill -CONT -f ddmlab-ladder; pkill -CONT -f "fid fashion-mnist:test"; pkill -CONT rustc; pkill -CONT cargo
for p in dit-fmnist dit-fmnist-pca dit-fmnist-kl; do
  echo "=== eval $p $(date)"
  $B gen-eval --run runs/gen-eq/$p --ckpt latest --cfg 3 --n 5000 > runs/gen-eq/$p.eval3.log 2>&1
  echo "=== done eval $p $(date) rc=$?"
done
