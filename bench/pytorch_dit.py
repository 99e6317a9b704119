#!/usr/bin/env python3
"""Generation parity (issue 11): ddmlab's class-conditional DiT recipe trained in PyTorch for the same steps and
sampled with the same DDIM and guidance, into an ADM-style .npz that `ddmlab fid` scores beside ddmlab's own samples.
If the two FIDs differ by much more than seed noise, one side is wrong, not under-trained.

  ddmlab train --preset dit-tiny --steps 2000 --out runs/gp/ddmlab
  ddmlab sample --run runs/gp/ddmlab --n 5000 --cfg 2 --steps 50 --npz runs/gp/ddmlab.npz
  python3 bench/pytorch_dit.py --config runs/gp/ddmlab/config.toml --n 5000 --cfg 2 --sample-steps 50 \\
      --out runs/gp/pytorch.npz
  ddmlab fid runs/gp/ddmlab.npz fashion-mnist:test --n 5000
  ddmlab fid runs/gp/pytorch.npz fashion-mnist:test --n 5000

The config is a ddmlab run's config.toml with the pixel-space DDPM objective of the dit-* presets ([denoise]: pixels
tokenizer with the model's patch, noise in pixels seen by the network, eps / x0 / v target, uniform weight, class
dropout); the network is bench/pytorch_ldae.py's DenoisingVit, the mirror of ddmlab's. Training mirrors ddmlab's
loop: a fresh permutation per epoch, t uniform, AdamW with linear warm-up and cosine decay to min_lr_frac, EMA with
decay min(d, (1 + s) / (10 + s)). Sampling mirrors `ddmlab sample`: DDIM (eta = 0) over evenly spaced timesteps,
x0_hat clipped to [-1, 1], guidance eps_u + w (eps_c - eps_u) against the null class, one row of n / classes images
per class, from the EMA weights.
"""
import argparse
import math
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_ldae import DenoisingVit, alpha_bar, ema_update, load_split, lr_at  # noqa: E402


def check(cfg):
    d, m = cfg["denoise"], cfg["model"]
    tok = d["tokenizer"]
    need = {
        "denoise.tokenizer.kind": (tok["kind"], "pixels"),
        "denoise.noise_space": (d["noise_space"], "latent"),
        "denoise.input": (d["input"], "latent"),
        "denoise.loss_weight": (d["loss_weight"], "uniform"),
        "model.gelu": (m.get("gelu", "erf"), "erf"),
    }
    for key, (have, want) in need.items():
        if have != want:
            sys.exit(f"{key} = {have!r}: this script mirrors the pixel-space DiT recipe ({key} = {want!r})")
    if tok["patch"] != m["patch"]:
        sys.exit("denoise.tokenizer.patch must equal model.patch (pixel tokens are the network's patches)")
    if d["target"] not in ("eps", "x0", "v"):
        sys.exit(f"denoise.target = {d['target']!r}: expected eps, x0 or v")
    t = cfg["train"]
    if cfg["model"].get("conv_head", 0):
        sys.exit("model.conv_head: this script mirrors DiT's linear head, not a conv head")
    if t.get("grad_clip", 0.0) != 0.0 or t.get("augment", {}).get("kind", "none") != "none":
        sys.exit("train.grad_clip / train.augment: this script mirrors a run without gradient clipping or augmentation")
    if m.get("num_classes", 0) == 0:
        sys.exit("model.num_classes = 0: the parity check is for the class-conditional generator")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a ddmlab run's config.toml (a dit-* preset)")
    ap.add_argument("--steps", type=int, default=0, help="training steps (default: the config's train.steps)")
    ap.add_argument("--n", type=int, default=5000, help="images to sample")
    ap.add_argument("--cfg", type=float, default=2.0, help="guidance scale w")
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=250, help="images per sampling chunk")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", required=True, help="output .npz (arr_0 [N, H, W, C] uint8, arr_1 labels)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    check(cfg)
    d, m, t = cfg["denoise"], cfg["model"], cfg["train"]
    classes, T = m["num_classes"], d["timesteps"]
    abar = alpha_bar(d["noise"], T)
    g_all = torch.tensor(np.sqrt(abar), dtype=torch.float32)
    s_all = torch.tensor(np.sqrt(1 - abar), dtype=torch.float32)

    xtr, ytr = load_split(args.data_dir, cfg["data"], "train")
    if cfg.get("train_limit", 0):
        xtr, ytr = xtr[: cfg["train_limit"]], ytr[: cfg["train_limit"]]
    torch.manual_seed(t["seed"])
    rng = np.random.default_rng(t["seed"])
    model = DenoisingVit(m)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(t["beta1"], t["beta2"]), eps=t["adam_eps"],
                            weight_decay=t["weight_decay"])
    b = t["batch_size"]
    total = args.steps or t["steps"]
    if total <= 0:
        sys.exit("the config sets no train.steps (an epochs or time budget): pass --steps")
    warmup = round(t["warmup_frac"] * total)
    peak = t["blr"] * b / 256
    per_epoch = max(len(xtr) // b, 1)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start, perm = time.perf_counter(), None
    for step in range(total):
        if step % per_epoch == 0:
            perm = rng.permutation(len(xtr))
        idx = perm[(step % per_epoch) * b:(step % per_epoch + 1) * b]
        x0 = torch.from_numpy(xtr[idx])
        y = torch.from_numpy(ytr[idx])
        drop = torch.from_numpy(rng.random(b) < d["class_dropout"])
        y = torch.where(drop, torch.full_like(y, classes), y)
        tt = torch.from_numpy(rng.integers(0, T, b))
        eps = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
        g, s = g_all[tt][:, None, None, None], s_all[tt][:, None, None, None]
        x_t = g * x0 + s * eps
        target = {"eps": eps, "x0": x0, "v": g * eps - s * x0}[d["target"]]
        loss = (model(x_t, tt, y) - target).square().mean()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, warmup, peak, peak * t["min_lr_frac"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema, model, step, t["ema_decay"])
        if (step + 1) % 50 == 0 or step + 1 == total:
            rate = (step + 1) * b / (time.perf_counter() - start)
            print(f"step {step + 1}/{total} loss {loss.item():.4f} {rate:.1f} img/s", file=sys.stderr, flush=True)
    train_s = time.perf_counter() - start
    model.load_state_dict(ema)
    model.eval()

    # ddmlab's TimestepMap::evenly_spaced and DDIM (eta = 0) with clipped x0_hat.
    S = args.sample_steps
    ts = list(range(T)) if S >= T else sorted(set(round(i * (T - 1) / (S - 1)) for i in range(S))) if S > 1 else [T - 1]
    per_row = math.ceil(args.n / classes)
    labels = np.repeat(np.arange(classes), per_row)[: args.n]
    c, h, w = m["image"]["channels"], m["image"]["height"], m["image"]["width"]
    gen = torch.Generator().manual_seed(args.seed)
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(labels), args.batch):
            y = torch.from_numpy(labels[lo:lo + args.batch])
            n = len(y)
            x = torch.randn(n, c, h, w, generator=gen)
            for i in reversed(range(len(ts))):
                tcur = ts[i]
                tt = torch.full((n,), tcur)
                if args.cfg != 1.0:
                    o = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, torch.full_like(y, classes)]))
                    cond, uncond = o.chunk(2)
                    o = uncond + args.cfg * (cond - uncond)
                else:
                    o = model(x, tt, y)
                g, s = g_all[tcur], s_all[tcur]
                x0 = {"eps": lambda: (x - s * o) / g, "x0": lambda: o, "v": lambda: g * x - s * o}[d["target"]]()
                x0 = x0.clamp(-1, 1)
                eps = (x - g * x0) / s
                prev = float(abar[ts[i - 1]]) if i > 0 else 1.0
                x = math.sqrt(prev) * x0 + math.sqrt(1 - prev) * eps
            out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
            print(f"sampled {lo + n}/{len(labels)}", file=sys.stderr, flush=True)
    images = np.concatenate(out)
    np.savez(args.out, arr_0=images, arr_1=labels.astype(np.int64))
    print(f"{args.out}: {len(images)} images; training {total} steps in {train_s:.0f} s, "
          f"sampling {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
