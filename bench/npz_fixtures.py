#!/usr/bin/env python3
"""The numpy side of ddmlab's `.npz` exchange formats (FID statistics, ADM sample batches).

  # write the fixtures the Rust tests read (crates/ddmlab/tests/fixtures/npz/)
  bench/npz_fixtures.py write crates/ddmlab/tests/fixtures/npz
  # read statistics written by `ddmlab fid-stats` and score them as pytorch-fid does (scipy sqrtm)
  bench/npz_fixtures.py fid a.npz b.npz
  # read a sample batch written by `ddmlab sample --npz` and print its shape, dtype and labels
  bench/npz_fixtures.py samples samples.npz

Needs numpy and scipy; never a test dependency.
"""
import json
import os
import sys

import numpy as np


def fid(mu1, s1, mu2, s2):
    """pytorch-fid's calculate_frechet_distance (scipy.linalg.sqrtm, the real part)."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def write(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    stats = {}
    for name in ("a", "b"):
        x = rng.normal(size=(40, 6)) * rng.uniform(0.5, 2.0, size=6) + rng.normal(size=6)
        mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
        np.savez(os.path.join(out, f"stats-{name}.npz"), mu=mu, sigma=sigma)
        stats[name] = (mu, sigma)
    # float32 statistics, compressed (clean-fid writes float32; savez_compressed deflates)
    np.savez_compressed(os.path.join(out, "stats-a-f32.npz"), mu=stats["a"][0].astype(np.float32),
                        sigma=stats["a"][1].astype(np.float32))
    np.savez(os.path.join(out, "no-sigma.npz"), mu=stats["a"][0])
    # ADM sample batches: [N, H, W, C] uint8 + int64 labels, and a grey [N, H, W] one
    rgb = rng.integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    labels = np.array([2, 0, 7], dtype=np.int64)
    np.savez(os.path.join(out, "samples-rgb.npz"), rgb, labels)
    grey = rng.integers(0, 256, size=(2, 3, 2), dtype=np.uint8)
    np.savez(os.path.join(out, "samples-grey.npz"), grey)
    np.savez(os.path.join(out, "samples-float.npz"), rgb.astype(np.float32))
    reference = {
        "fid_a_b": fid(*stats["a"], *stats["b"]),
        "mu_a": stats["a"][0].tolist(),
        "sigma_a": stats["a"][1].ravel().tolist(),
        "rgb": rgb.ravel().tolist(),
        "rgb_shape": list(rgb.shape),
        "labels": labels.tolist(),
        "grey": grey.ravel().tolist(),
        "grey_shape": list(grey.shape),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)
    print(f"wrote fixtures to {out}; FID(a, b) = {reference['fid_a_b']:.10f}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "write" and len(sys.argv) == 3:
        write(sys.argv[2])
    elif cmd == "fid" and len(sys.argv) == 4:
        a, b = (np.load(p) for p in sys.argv[2:4])
        print(f"FID {fid(a['mu'], a['sigma'], b['mu'], b['sigma']):.6f}  (numpy + scipy, pytorch-fid's formula)")
    elif cmd == "samples" and len(sys.argv) == 3:
        f = np.load(sys.argv[2])
        x = f["arr_0"]
        print(f"arr_0: {x.shape} {x.dtype}, values {x.min()}..{x.max()}")
        if "arr_1" in f:
            print(f"arr_1: {f['arr_1'].shape} {f['arr_1'].dtype}, classes {sorted(set(f['arr_1'].tolist()))}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
