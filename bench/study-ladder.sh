#!/usr/bin/env bash
# The declared ladder study (issue 47, item 5), run from the binary of tag `ladder-study-v1`
# (commit 3a0bfd4; studies/ladder.toml hash 93598b1731013ab4) into docs/results/study-ladder. Resumable: run
# it again with the same arguments to continue; finished runs (their probe.json / fid.json) are
# kept in git, checkpoints are not (.gitignore).
#
#   git worktree add ../study-src ladder-study-v1
#   (cd ../study-src && cargo build --release -p ddmlab-cli --no-default-features)
#   bench/study-ladder.sh ../study-src/target/release/ddmlab MINUTES
set -euo pipefail
bin=${1:?path to the ladder-study-v1 ddmlab binary}
minutes=${2:?minutes before a clean stop}
cd "$(dirname "$0")/.."
keep=docs/results/deconstruct/tokenizers
reuse=()
for key in 2e13740a95 83759bb487 8ac8557c82 b3aaf5491c e91edd7046; do
  reuse+=(--reuse-tokenizer "$keep/fashion_mnist-1x32x32-conv-vae-kl-fmnist-c2-unit-$key")
done
"$bin" --version
exec "$bin" deconstruct --study ladder --out docs/results/study-ladder "${reuse[@]}" --stop-after "$minutes"
