#!/usr/bin/env python3
"""MAR's comparisons on Fashion-MNIST as one markdown table (issue 12), from the run folders that
bench/mar_fmnist.sh writes: each run's config.toml, fid.json and (for the codebook runs)
codebook-fit.json. Standard library only (Python 3.11+).

Usage: bench/mar_table.py [OUT_DIR] > table.md      (default OUT_DIR: runs/mar)

Rows: MAR's Table 1 (order and attention, Diffusion Loss) and Table 2 (the per-token loss on the
bidirectional random-order model), then the K and temperature sweeps of the two trainings of mar-fmnist (seeds 0 and 1). A point that is
not in a run's fid.json yet is shown as "-".
"""
import json
import math
import pathlib
import sys
import tomllib

OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "runs/mar")

# run, what changes, and what the paper reports for it (ImageNet 256, MAR-L, its Tables 1-2; the figures
# are the two the issue quotes, the rest is the direction the paper states).
ROWS = [
    ("mar-fmnist", "MAR: bidirectional, random order, Diffusion Loss", "best of the orders; 3.50 w/o CFG"),
    ("mar-fmnist-ar-random", "causal attention, random order", "worse than bidirectional"),
    ("mar-fmnist-ar-raster", "causal attention, raster order", "worst of the orders"),
    ("mar-fmnist-l2", "L2 regression head", "FID > 100"),
    ("mar-fmnist-ce", "cross-entropy over k-means codes", "worse than Diffusion Loss (8.79 w/o CFG)"),
    ("mar-fmnist-vq", "Diffusion Loss on the k-means codes", "worse than on continuous tokens"),
]


def fid_rows(run):
    path = run / "fid.json"
    return json.loads(path.read_text()) if path.exists() else []


def point(rows, cfg, k=64, tau=1):
    # A row's label names what its head uses: Diffusion Loss `mar-K-head100-tauT`, cross-entropy
    # `mar-K-tauT`, L2 `mar-K` (no sampling, so only tau = 1 applies).
    samplers = {f"mar-{k}-head100-tau{tau:g}", f"mar-{k}-tau{tau:g}"} | ({f"mar-{k}"} if tau == 1 else set())
    hits = [r for r in rows if r["cfg"] == cfg and r["sampler"] in samplers and r["n"] == 5000 and r.get("seed", 0) == 0]
    return hits[-1] if hits else None


def fmt(p):
    return "-" if p is None else f"{p['fid']:.2f} ({p['precision']:.3f} / {p['recall']:.3f})"


print("| run | what changes | steps done / planned | loss, last fifth | FID-5K w = 1 (P / R) | FID-5K w = 3 (P / R) | codebook | paper |")
print("|---|---|---|---|---|---|---|---|")
for name, change, paper in ROWS:
    run = OUT / name
    if not (run / "config.toml").exists():
        print(f"| {name} | {change} | not started | | | | | {paper} |")
        continue
    planned = tomllib.loads((run / "config.toml").read_text())["train"]["steps"]
    losses = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    tail = [m["loss"] for m in losses[-max(1, len(losses) // 5):]]
    loss = f"{sum(tail) / len(tail):.4f}" if tail else "-"
    done = losses[-1]["step"] if losses else 0
    steps = f"{done} / {planned}"
    rows = fid_rows(run)
    book = "-"
    report = run / "codebook-fit.json"
    if report.exists():
        r = json.loads(report.read_text())
        book = f"{r['size']} codes, token MSE {r['mse']:.4f} ({100 * r['relative_mse']:.1f}% of the variance)"
        if r.get("image_error"):
            e = r["image_error"]
            psnr = lambda mse: 10 * math.log10(4 / mse)  # images in [-1, 1]
            book += f"; decoded {psnr(e['quantised']):.2f} dB vs {psnr(e['continuous']):.2f} dB unquantised"
    print(f"| {name} | {change} | {steps} | {loss} | {fmt(point(rows, 1.0))} | {fmt(point(rows, 3.0))} | {book} | {paper} |")

for name in ("mar-fmnist", "mar-fmnist-seed1"):
    rows = fid_rows(OUT / name)
    print()
    print(f"| {name}, w = 3 | FID-5K (P / R) |")
    print("|---|---|")
    for k in (8, 16, 32, 64):
        print(f"| K = {k}, temperature 1 | {fmt(point(rows, 3.0, k=k))} |")
    for k in (16, 64):
        for tau in (0.8, 0.9, 1.1):
            print(f"| K = {k}, temperature {tau:g} | {fmt(point(rows, 3.0, k=k, tau=tau))} |")
