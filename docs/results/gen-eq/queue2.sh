#!/bin/bash
# Continuation of queue.sh: after the PCA run, the conv-VAE run, then the pixel run again (its first run's
# time-budget probe measured 2.04 s/step against 1.67 s/step sustained: 557 steps in 16 minutes), then evals.
cd /work/main
B=target/release/ddmlab
while pgrep -f "train --preset dit-fmnist-pca" > /dev/null; do sleep 5; done
echo "=== done dit-fmnist-pca $(date)"
for p in dit-fmnist-kl dit-fmnist; do
  out=runs/gen-eq/$p; [ $p = dit-fmnist ] && out=runs/gen-eq/dit-fmnist-r2
  echo "=== train $p -> $out $(date)"
  $B train --preset $p --time-budget 20 --out $out > $out.train.log 2>&1
  echo "=== done $p $(date) rc=$?"
done
pkill -CONT -f ddmlab-ladder; pkill -CONT -f "fid fashion-mnist:test"; pkill -CONT rustc; pkill -CONT cargo
for r in dit-fmnist-pca dit-fmnist-kl dit-fmnist-r2 dit-fmnist; do
  echo "=== eval $r $(date)"
  $B gen-eval --run runs/gen-eq/$r --ckpt latest --cfg 3 --n 5000 > runs/gen-eq/$r.eval3.log 2>&1
  echo "=== done eval $r $(date) rc=$?"
done
