#!/bin/bash
# After the pixel rerun: continue the stopped jobs, then FID-1K (w = 3) of the three equal-time runs, then FID-5K.
cd /work/main
B=target/release/ddmlab
while pgrep -f "train --preset dit-fmnist " > /dev/null; do sleep 5; done
echo "=== done dit-fmnist-r2 $(date)"
pkill -CONT -f ddmlab-ladder; pkill -CONT -f "fid fashion-mnist:test"; pkill -CONT rustc; pkill -CONT cargo
for n in 1000 5000; do
for r in dit-fmnist-r2 dit-fmnist-pca dit-fmnist-kl; do
  echo "=== eval $r n=$n $(date)"
  $B gen-eval --run runs/gen-eq/$r --ckpt latest --cfg 3 --n $n > runs/gen-eq/$r.eval3-$n.log 2>&1
  echo "=== done eval $r n=$n $(date) rc=$?"
done
done
