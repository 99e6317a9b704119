#!/usr/bin/env bash
# FID-5K against network evaluations (NFE) on the landed dit-long weights (issue 51, item 5), declared in RESULTS.md
# ("FID against network evaluations") before its runs. For each sampling seed (0, 1): the EMA weights imported into
# a run folder of their own, then DDIM, DPM-Solver++(2M) and Euler at 10 / 15 / 25 / 50 steps and Heun at
# 5 / 8 / 13 / 25 steps (9 / 15 / 25 / 49 evaluations), guidance w = 1.5 (the landed model's best; a guided step's
# doubled batch counts as one evaluation), class-balanced, against the first 5000 test images. Resumable: each
# point is written to the run's fid.json as it finishes and `--resume` skips it. About 2.5 hours per seed on 2 cores.
#
#   bench/fid_nfe.sh [ddmlab binary] [out folder]
set -euo pipefail
bin=${1:-target/release/ddmlab}
out=${2:-runs/fid-nfe}
cd "$(dirname "$0")/.."
"$bin" --version
for seed in 0 1; do
  run=$out/seed-$seed
  if [ ! -d "$run/checkpoints" ]; then
    "$bin" import --config docs/results/dit-long/config.toml docs/results/dit-long/ema.safetensors --out "$run"
  fi
  common=(--run "$run" --n 5000 --cfg 1.5 --seed "$seed" --resume)
  "$bin" gen-eval "${common[@]}" --sampler ddim --steps 10,15,25,50
  "$bin" gen-eval "${common[@]}" --sampler dpm2m --steps 10,15,25,50
  "$bin" gen-eval "${common[@]}" --sampler heun --steps 5,8,13,25
  "$bin" gen-eval "${common[@]}" --sampler euler --steps 10,15,25,50
done
# The table over both seeds: FID-5K per sampler and NFE (mean, and each seed), and the declared check.
python3 - "$out" <<'EOF'
import json, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(dict)
for seed in (0, 1):
    for r in json.load(open(f"{out}/seed-{seed}/fid.json")):
        if r["n"] != 5000 or r["cfg"] != 1.5:
            continue
        kind, steps = r["sampler"].rsplit("-", 1)
        nfe = 2 * int(steps) - 1 if kind == "heun" else int(steps)
        rows[(kind, nfe)][seed] = r["fid"]
print("| sampler | NFE | FID-5K seed 0 | seed 1 | mean |\n|---|---|---|---|---|")
for (kind, nfe), v in sorted(rows.items()):
    mean = sum(v.values()) / len(v)
    print(f"| {kind} | {nfe} | {v.get(0, float('nan')):.2f} | {v.get(1, float('nan')):.2f} | {mean:.2f} |")
ref = rows[("ddim", 50)]
for nfe in (15, 25):
    dpm = rows[("dpm2m", nfe)]
    gap = sum(dpm.values()) / 2 - sum(ref.values()) / 2
    spread = max(abs(dpm[0] - dpm[1]), abs(ref[0] - ref[1]))
    margin = max(1.0, spread)
    verdict = "holds" if gap <= margin else "fails"
    print(f"DPM-Solver++(2M) at {nfe} NFE - DDIM-50: {gap:+.2f} FID-5K, margin {margin:.2f}: {verdict}")
EOF
