#!/usr/bin/env python3
"""The PyTorch reference for ddmlab's l-DAE and DiT: the same model, objectives, schedule and probe.

Two uses, both reading a ddmlab run config (the TOML that `ddmlab pretrain --dry-run` prints
and every run folder holds), so the two implementations train the identical recipe:

  bench  time the training step on synthetic images (img/s, peak memory); `ddmlab bench --pytorch`
         runs it beside ddmlab's own step and prints the ratio. The objective is the config's:
         [ldae] (l-DAE) or [ddpm] (class-conditional DiT, eps / x0 / v MSE, label dropout).
  bench-sample  time one DDIM sampling step (a no-grad forward, doubled for guidance, and the update)
         of the same network; `ddmlab bench --sample --pytorch` prints the ratio.
  train  pretrain on Fashion-MNIST/MNIST for the config's steps, then run the linear probe and kNN
         with ddmlab's protocol (t = 10, BN without affine, SGD momentum 0.9, cosine lr); prints the
         table. Used for the parity check (docs in RESULTS.md).

Needs `pip install torch numpy`. It is a benchmark and a reference, never a test dependency.
"""
import argparse
import gzip
import json
import math
import os
import resource
import struct
import sys
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- model (mirrors crates/ddmlab/src/nn)
def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):  # [B, L, W]
        b, l, w = x.shape
        qkv = self.qkv(x).reshape(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [B, H, L, hd]
        return self.proj(out.transpose(1, 2).reshape(b, l, w))


class Block(nn.Module):
    def __init__(self, width, heads, hidden, cond):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.ada_ln = nn.Linear(cond, 6 * width)

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.ada_ln(F.silu(c)).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), s1, sc1))
        return x + g2.unsqueeze(1) * self.fc2(F.gelu(self.fc1(modulate(self.norm2(x), s2, sc2))))


def sincos_2d(width, gh, gw):
    q = width // 4
    omega = 1.0 / 10000 ** (np.arange(q, dtype=np.float64) / q)
    rows = []
    for y in range(gh):
        for x in range(gw):
            parts = []
            for pos in (x, y):
                parts += [np.sin(pos * omega), np.cos(pos * omega)]
            rows.append(np.concatenate(parts))
    return torch.tensor(np.stack(rows), dtype=torch.float32).unsqueeze(0)


def timestep_features(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
    args = t.detach().cpu().double()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1).float()



class DenoisingVit(nn.Module):
    def __init__(self, m):
        super().__init__()
        c, h, w = m["image"]["channels"], m["image"]["height"], m["image"]["width"]
        self.p, self.c, self.h, self.w = m["patch"], c, h, w
        width, cond = m["width"], m["cond_width"]
        self.freq_dim = m["freq_dim"]
        self.encoder_depth = m["encoder_depth"]
        self.patch_embed = nn.Linear(self.p * self.p * c, width)
        self.register_buffer("pos", sincos_2d(width, h // self.p, w // self.p))
        self.t1 = nn.Linear(self.freq_dim, cond)
        self.t2 = nn.Linear(cond, cond)
        hidden = round(width * m["mlp_ratio"])
        self.blocks = nn.ModuleList([Block(width, m["heads"], hidden, cond) for _ in range(m["depth"])])
        # U-ViT's long skips (model.long_skip): out block j first maps concat(h, the output of in block half-1-j)
        # back to the width with its own linear layer (Xavier, as every linear before the zero inits below).
        half = m["depth"] // 2 if m.get("long_skip", False) else 0
        self.skips = nn.ModuleList([nn.Linear(2 * width, width) for _ in range(half)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(cond, 2 * width)
        self.final_proj = nn.Linear(width, self.p * self.p * c)
        self.num_classes = m.get("num_classes", 0)
        # Class embedding with a null class (DiT's LabelEmbedder), added to the timestep's.
        self.y_embed = nn.Embedding(self.num_classes + 1, cond) if self.num_classes > 0 else None
        self._init()

    def _init(self):  # DiT's initialize_weights
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        for lin in (self.t1, self.t2):
            nn.init.normal_(lin.weight, std=0.02)
        if self.y_embed is not None:
            nn.init.normal_(self.y_embed.weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.ada_ln.weight)
            nn.init.zeros_(blk.ada_ln.bias)
        for lin in (self.final_ada, self.final_proj):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def cond(self, t, y=None):
        c = self.t2(F.silu(self.t1(timestep_features(t, self.freq_dim).to(self.pos.device))))
        if self.y_embed is not None:
            y = y if y is not None else torch.full_like(t, self.num_classes)
            c = c + self.y_embed(y)
        return c

    def run_blocks(self, x, t, y, depth):  # tokens after the first `depth` blocks, and the conditioning
        c = self.cond(t, y)
        h = self.patch_embed(patchify(x, self.p)) + self.pos
        n, half, saved = len(self.blocks), len(self.skips), []
        for i, blk in enumerate(self.blocks[:depth]):
            if i >= n - half:  # an out block: read the mirror in block's output
                j = i - (n - half)
                h = self.skips[j](torch.cat([h, saved[half - 1 - j]], dim=-1))
            h = blk(h, c)
            if i < half:
                saved.append(h)
        return h, c

    def encode(self, x, t, y=None):
        return self.run_blocks(x, t, y, self.encoder_depth)

    def forward(self, x, t, y=None):
        h, c = self.run_blocks(x, t, y, len(self.blocks))
        shift, scale = self.final_ada(F.silu(c)).chunk(2, dim=1)
        out = self.final_proj(modulate(self.final_norm(h), shift, scale))
        return unpatchify(out, self.p, self.c, self.h, self.w)


def patchify(x, p):  # [B, C, H, W] -> [B, L, p*p*C], (row, col, channel) layout
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(t, p, c, h, w):
    b = t.shape[0]
    return t.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


# ---------------------------------------------------------------- PCA and objective (mirrors tokenizer/pca.rs, diffusion/ldae.rs)
def fit_pca(images, p, n, rng):
    """images: [N, C, H, W] float64 in [-1, 1]. Returns (mean [D], V [D, D] columns sorted by variance)."""
    num, c, h, w = images.shape
    idx = rng.integers(0, num, n)
    gy, gx = rng.integers(0, h // p, n), rng.integers(0, w // p, n)
    patches = np.stack([images[i, :, y * p:(y + 1) * p, x * p:(x + 1) * p].transpose(1, 2, 0).reshape(-1)
                        for i, y, x in zip(idx, gy, gx)])
    mean = patches.mean(0)
    cov = np.cov(patches - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vecs = vecs[:, order]
    signs = np.sign(vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])])
    return mean, vecs * signs


class Objective:
    def __init__(self, cfg, mean, basis):
        l = cfg["ldae"]
        self.p = cfg["model"]["patch"]
        self.d = l["latent_dim"]
        steps = l["timesteps"]
        self.sigma = torch.tensor([l["sigma_max"] * t / (steps - 1) for t in range(steps)], dtype=torch.float64)
        self.w_res = l["residual_weight"]
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.v_d = torch.tensor(basis[:, : self.d], dtype=torch.float32)

    def to(self, device):
        self.sigma, self.mean, self.v_d = self.sigma.to(device), self.mean.to(device), self.v_d.to(device)
        return self

    def noisy_input(self, x0, t, eps):
        b, c, h, w = x0.shape
        z0 = (patchify(x0, self.p) - self.mean) @ self.v_d
        z_t = z0 + eps * self.sigma[t].float()[:, None, None]
        return unpatchify(z_t @ self.v_d.T + self.mean, self.p, c, h, w)

    def loss(self, x0, pred, t):
        e = patchify(x0 - pred, self.p)
        per = self.w_res * e.square().sum(-1) + (1 - self.w_res) * (e @ self.v_d).square().sum(-1)  # [B, L]
        lam = (1.0 / (1.0 + self.sigma[t] ** 2)).float()[:, None]
        return (per * lam).mean()


def alpha_bar(schedule, steps):
    """The VP schedule's alpha_bar in float64 (mirrors crates/ddmlab/src/diffusion/vp.rs)."""
    kind = schedule["kind"]
    if kind == "linear-beta":
        betas = np.linspace(schedule["start"], schedule["end"], steps, dtype=np.float64)
        return np.cumprod(1 - betas)
    if kind == "cosine":
        f = lambda t: math.cos((t / steps + schedule["s"]) / (1 + schedule["s"]) * math.pi / 2) ** 2
        betas = np.array([min(1 - f(i + 1) / f(i), schedule["max_beta"]) for i in range(steps)])
        return np.cumprod(1 - betas)
    if kind == "linear-gamma2":
        return np.array([1 - (t + 1) / steps for t in range(steps)], dtype=np.float64)
    sys.exit(f"unknown schedule {kind}")


class DdpmObjective:
    """x_t = g x0 + s eps; the target is eps, x0 or v = g eps - s x0; MSE."""

    def __init__(self, cfg):
        d = cfg["ddpm"]
        abar = alpha_bar(d["schedule"], d["timesteps"])
        self.g = torch.tensor(np.sqrt(abar), dtype=torch.float32)
        self.s = torch.tensor(np.sqrt(1 - abar), dtype=torch.float32)
        self.prediction = d["prediction"]
        self.timesteps = d["timesteps"]

    def loss(self, model, x0, t, eps, y):
        g, s = self.g[t][:, None, None, None], self.s[t][:, None, None, None]
        x_t = g * x0 + s * eps
        target = {"eps": eps, "x0": x0, "v": g * eps - s * x0}[self.prediction]
        return (model(x_t, t, y) - target).square().mean()


def lr_at(step, total, warmup, peak, floor):
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def ema_update(ema, model, step, decay):
    """ddmlab's EMA (train/ema.rs): decay warmed up as min(d, (1 + s) / (10 + s)) after step s."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for k, v in model.state_dict().items():
            ema[k].mul_(d).add_(v, alpha=1 - d)


# ---------------------------------------------------------------- data
def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root, name, split):
    prefix = "train" if split == "train" else "t10k"
    def find(stem):
        for cand in (stem, stem + ".gz"):
            path = os.path.join(root, name, cand)
            if os.path.exists(path):
                return path
        sys.exit(f"missing {os.path.join(root, name, stem)}; run `ddmlab data fetch {name}`")
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 127.5 - 1.0
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return x[:, None], y


# ---------------------------------------------------------------- commands
def save_safetensors(tensors, path):
    """The safetensors format (8-byte header length, JSON header, little-endian f32 data), written directly."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().cpu().contiguous().numpy().astype("<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        s, e = meta["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + s:8 + n + e], dtype="<f4").reshape(meta["shape"]).copy())
    return out


def make_model_and_optim(cfg):
    torch.manual_seed(cfg["train"]["seed"])
    model = DenoisingVit(cfg["model"])
    t = cfg["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(t["beta1"], t["beta2"]), eps=t["adam_eps"],
                            weight_decay=t["weight_decay"])
    return model, opt


def bench_model_and_optim(args, cfg):
    """The benchmarked model: fresh, or with `--init-from`'s weights (strict: every key, every shape)."""
    model, opt = make_model_and_optim(cfg)
    if args.init_from:
        model.load_state_dict(load_safetensors(args.init_from), strict=True)
    return model, opt


def train_step(model, opt, obj, x0, t, eps, lr):
    for g in opt.param_groups:
        g["lr"] = lr
    x_t = obj.noisy_input(x0, t, eps)
    loss = obj.loss(x0, model(x_t, t), t)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def ddpm_step(model, opt, obj, x0, t, eps, y, lr):
    for g in opt.param_groups:
        g["lr"] = lr
    loss = obj.loss(model, x0, t, eps, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def report(args, b, secs):
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"img_per_s": args.steps * b / secs, "ms_per_step": 1000 * secs / args.steps,
                      "threads": torch.get_num_threads(), "peak_rss_mb": peak_mb, "torch": torch.__version__}))


def time_steps(args, b, batch, step):
    """3 warm-up steps, then `args.steps` timed ones on batches made beforehand."""
    for _ in range(3):
        step(batch())
    batches = [batch() for _ in range(args.steps)]
    start = time.perf_counter()
    for bt in batches:
        step(bt)
    report(args, b, time.perf_counter() - start)


def cmd_bench_ddpm(args, cfg):
    b, m = args.batch_size, cfg["model"]
    c, h, w = m["image"]["channels"], m["image"]["height"], m["image"]["width"]
    obj = DdpmObjective(cfg)
    model, opt = bench_model_and_optim(args, cfg)
    classes, drop = m.get("num_classes", 0), cfg["ddpm"]["class_dropout"]
    gen = torch.Generator().manual_seed(0)

    def batch():
        x0 = torch.rand(b, c, h, w, generator=gen) * 2 - 1
        t = torch.randint(0, obj.timesteps, (b,), generator=gen)
        y = None
        if classes > 0:
            y = torch.randint(0, classes, (b,), generator=gen)
            y = torch.where(torch.rand(b, generator=gen) < drop, torch.full_like(y, classes), y)
        return x0, t, torch.randn(b, c, h, w, generator=gen), y

    time_steps(args, b, batch, lambda bt: ddpm_step(model, opt, obj, *bt, 1e-4))


@torch.no_grad()
def cmd_bench_sample(args, cfg):
    """One DDIM (eta = 0) step per iteration: guided forward on the doubled batch, then the update."""
    b, m = args.batch_size, cfg["model"]
    c, h, w = m["image"]["channels"], m["image"]["height"], m["image"]["width"]
    obj = DdpmObjective(cfg)
    model, _ = bench_model_and_optim(args, cfg)
    model.eval()
    classes = m.get("num_classes", 0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, h, w, generator=gen)
    y = torch.randint(0, max(classes, 1), (b,), generator=gen)
    ts = np.linspace(0, obj.timesteps - 1, args.steps + 1).round().astype(int)[::-1]

    def step(x, t, t_prev):
        tt = torch.full((b,), int(t))
        if classes > 0 and args.cfg != 1.0:
            out = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, torch.full_like(y, classes)]))
            cond, uncond = out.chunk(2)
            eps = uncond + args.cfg * (cond - uncond)
        else:
            eps = model(x, tt, y if classes > 0 else None)
        g, s = obj.g[t], obj.s[t]
        x0 = ((x - s * eps) / g).clamp(-1, 1)
        eps = (x - g * x0) / s
        return obj.g[t_prev] * x0 + obj.s[t_prev] * eps

    for i in range(2):
        x = step(x, ts[i], ts[i + 1])
    start = time.perf_counter()
    for i in range(args.steps):
        x = step(x, ts[i], ts[i + 1])
    report(args, b, time.perf_counter() - start)


def cmd_bench(args, cfg):
    if "ddpm" in cfg:
        return cmd_bench_ddpm(args, cfg)
    b = args.batch_size
    m = cfg["model"]
    c, h, w = m["image"]["channels"], m["image"]["height"], m["image"]["width"]
    dim = m["patch"] ** 2 * c
    obj = Objective(cfg, np.zeros(dim), np.eye(dim))  # speed does not depend on the basis
    model, opt = bench_model_and_optim(args, cfg)
    tokens = (h // m["patch"]) * (w // m["patch"])
    gen = torch.Generator().manual_seed(0)
    def batch():
        x0 = torch.rand(b, c, h, w, generator=gen) * 2 - 1
        t = torch.randint(0, cfg["ldae"]["timesteps"], (b,), generator=gen)
        return x0, t, torch.randn(b, tokens, cfg["ldae"]["latent_dim"], generator=gen)
    time_steps(args, b, batch, lambda bt: train_step(model, opt, obj, *bt, 1e-4))


def features(model, x, t_probe, pool, batch=500):
    out = []
    dev = model.pos.device
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch]).to(dev)
            h, _ = model.encode(xb, torch.full((len(xb),), t_probe, device=dev))
            out.append((h.mean(1) if pool == "avg" else h.reshape(len(xb), -1)).cpu())
    return torch.cat(out)


def linear_probe(ftr, ytr, fte, yte, epochs, lr, seed, batch=256):
    mean, std = ftr.mean(0), (ftr.var(0, unbiased=False) + 1e-6).sqrt()
    ftr, fte = (ftr - mean) / std, (fte - mean) / std
    classes = int(ytr.max()) + 1
    lin = nn.Linear(ftr.shape[1], classes)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    opt = torch.optim.SGD(lin.parameters(), lr=lr, momentum=0.9)
    n = len(ftr)
    per_epoch = math.ceil(n / batch)
    total, warmup = per_epoch * epochs, max(1, min(epochs // 10, epochs - 1)) * per_epoch
    g = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step, total, warmup, lr, 0.0)
            loss = F.cross_entropy(lin(ftr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        return 100.0 * (lin(fte).argmax(1) == yte).float().mean().item()


def knn(ftr, ytr, fte, yte, k=20, temp=0.07):
    ftr, fte = F.normalize(ftr, dim=1), F.normalize(fte, dim=1)
    classes = int(ytr.max()) + 1
    correct = 0
    for i in range(0, len(fte), 256):
        sims, idx = (fte[i:i + 256] @ ftr.T).topk(k, dim=1)
        votes = torch.zeros(len(sims), classes).scatter_add_(1, ytr[idx], (sims / temp).exp())
        correct += (votes.argmax(1) == yte[i:i + 256]).sum().item()
    return 100.0 * correct / len(fte)


def cmd_train(args, cfg):
    name = cfg["data"]
    xtr, ytr = load_split(args.data_dir, name, "train")
    xte, yte = load_split(args.data_dir, name, "test")
    t = cfg["train"]
    rng = np.random.default_rng(t["seed"])
    mean, basis = fit_pca(xtr.astype(np.float64), cfg["model"]["patch"], cfg["ldae"]["pca_samples"], rng)
    dev = torch.device(args.device)
    obj = Objective(cfg, mean, basis).to(dev)
    model, opt = make_model_and_optim(cfg)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(t["beta1"], t["beta2"]), eps=t["adam_eps"],
                            weight_decay=t["weight_decay"])
    b, total = t["batch_size"], args.steps or t["steps"]
    warmup = round(t["warmup_frac"] * total)
    peak = t["blr"] * b / 256
    per_epoch = len(xtr) // b
    tokens = (xtr.shape[2] // obj.p) * (xtr.shape[3] // obj.p)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    perm = None
    for step in range(total):
        if step % per_epoch == 0:
            perm = rng.permutation(len(xtr))
        idx = perm[(step % per_epoch) * b:(step % per_epoch + 1) * b]
        x0 = torch.from_numpy(xtr[idx]).to(dev)
        tt = torch.from_numpy(rng.integers(0, len(obj.sigma), b)).to(dev)
        eps = torch.from_numpy(rng.standard_normal((b, tokens, obj.d)).astype(np.float32)).to(dev)
        loss = train_step(model, opt, obj, x0, tt, eps, lr_at(step, total, warmup, peak, peak * t["min_lr_frac"]))
        ema_update(ema, model, step, t["ema_decay"])
        if (step + 1) % 10 == 0 or step + 1 == total:
            rate = (step + 1) * b / (time.perf_counter() - start)
            print(f"step {step + 1}/{total} loss {loss:.4f} {rate:.1f} img/s", file=sys.stderr, flush=True)
    model.load_state_dict(ema)
    model.eval()
    rows = []
    ytr_t, yte_t = torch.from_numpy(ytr), torch.from_numpy(yte)
    for pool in ("avg", "flat"):
        ftr = features(model, xtr, cfg["ldae"]["probe_t"], pool)
        fte = features(model, xte, cfg["ldae"]["probe_t"], pool)
        lin = linear_probe(ftr, ytr_t, fte, yte_t, args.probe_epochs, args.probe_lr, t["seed"])
        kn = knn(ftr, ytr_t, fte, yte_t) if pool == "avg" else None
        rows.append({"pool": pool, "linear": lin, "knn": kn})
        print(json.dumps({"steps": total, "pool": pool, "linear": lin, "knn": kn}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"steps": total, "rows": rows, "seconds": time.perf_counter() - start}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["bench", "bench-sample", "train"])
    ap.add_argument("--cfg", type=float, default=1.0, help="bench-sample: guidance scale (1: one forward)")
    ap.add_argument("--config", required=True, help="a ddmlab config.toml")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=0, help="bench: timed steps; train: override total steps")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--probe-epochs", type=int, default=30)
    ap.add_argument("--probe-lr", type=float, default=0.1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cpu", help="train: cpu or cuda (the probe protocol is the same)")
    ap.add_argument("--init-from", default=None,
                    help="bench, bench-sample: start from these weights (reference-layout safetensors, `ddmlab export`)")
    ap.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) before any work")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("torch.set_flush_denormal(True) is not supported on this CPU")
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    if args.command == "bench":
        args.steps = args.steps or 20
        cmd_bench(args, cfg)
    elif args.command == "bench-sample":
        args.steps = args.steps or 10
        cmd_bench_sample(args, cfg)
    else:
        cmd_train(args, cfg)


if __name__ == "__main__":
    main()
