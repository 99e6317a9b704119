#!/usr/bin/env python3
"""l-DAE in PyTorch, written from the paper's text, not from ddmlab's code.

Chen, Liu, Xie, He, "Deconstructing Denoising Diffusion Models for Self-Supervised Learning" (arXiv 2401.14404), as
summarised in the project's paper notes: patch-wise PCA (d of D components kept, fitted on mean-subtracted patches),
Gaussian noise added in the PCA latent, the noisy latent mapped back to pixels by inverse PCA, a DiT-style ViT
(adaLN-Zero conditioned on t only, conditioning MLP a quarter of the width, the first half of the blocks the encoder)
predicting the original image under the weighted PCA-residual loss
    lambda_t * sum_i w_i r_i^2,   r = V^T (x0 - net(x_t)) per patch in the full basis,
    w_i = 1 for the first d components, 0.1 for the rest,   lambda_t = 1 / (1 + sigma_t^2),
with sigma_t linear from 0 to sqrt(2) over T = 1000 steps (t uniform per image) or one level sigma = sqrt(1/3);
AdamW without weight decay, linear warm-up then half-cycle cosine, EMA of the weights. Linear probe: the clean image
through the encoder conditioned on t = 10, tokens average-pooled, BatchNorm without affine parameters, a linear
classifier (SGD with momentum, cosine lr), top-1 on the test split.

Its purpose is the side-by-side check of issue 47 (item 7): a second implementation whose every choice is read from
the paper, so that a difference from ddmlab points at a choice ddmlab made. The choices the paper leaves open are
flags, named in `--help` and printed in the result JSON. It is a benchmark and a reference, never a test dependency.

  python3 bench/ldae_paper.py --data data/fashion-mnist --steps 400 --seed 0 --noise multi --json out.json

Needs `pip install torch numpy`.
"""
import argparse
import gzip
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(root, prefix):
    def find(name):
        for ext in ("", ".gz"):
            p = os.path.join(root, name + ext)
            if os.path.exists(p):
                return p
        raise SystemExit(f"{root}: no {name}[.gz] (run `ddmlab data fetch fashion-mnist`)")
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 127.5 - 1.0  # [-1, 1]
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def to_patches(x, p):  # [B, C, H, W] -> [B, L, p*p*C]
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


# ---------------------------------------------------------------- the tokenizer: patch-wise PCA
class PatchPCA:
    """Eigen-decomposition of the covariance of randomly sampled, mean-subtracted patches (float64)."""

    def __init__(self, images, patch, d, samples, gen):
        patches = to_patches(images, patch)  # [N, L, D]
        n, l, dim = patches.shape
        idx = torch.randint(0, n * l, (samples,), generator=gen)
        sample = patches.reshape(n * l, dim)[idx].double()
        self.mean = sample.mean(0)
        cov = (sample - self.mean).T @ (sample - self.mean) / (samples - 1)
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)
        self.eigenvalues = evals[order]
        self.basis = evecs[:, order].float()  # [D, D], columns = components, by decreasing variance
        self.mean = self.mean.float()
        self.d = d

    def encode(self, p):  # [.., D] -> [.., d]
        return (p - self.mean) @ self.basis[:, : self.d]

    def decode(self, z):  # [.., d] -> [.., D]
        return z @ self.basis[:, : self.d].T + self.mean


# ---------------------------------------------------------------- the network: DiT blocks, adaLN-Zero on t
def sincos_2d(width, grid):
    def one_d(w, pos):
        omega = 1.0 / 10000 ** (np.arange(w // 2, dtype=np.float64) / (w / 2))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gy, gx = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    emb = np.concatenate([one_d(width // 2, gx), one_d(width // 2, gy)], axis=1)
    return torch.from_numpy(emb).float().unsqueeze(0)  # [1, L, W]


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    args = t.double()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).float()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, width, heads, cond):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond, 6 * width))

    def attn(self, x):
        b, l, w = x.shape
        q, k, v = self.qkv(x).reshape(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, l, w))

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), s1, sc1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), s2, sc2))


class DenoisingViT(nn.Module):
    def __init__(self, patch_dim, tokens, width, depth, heads, freq_dim=256):
        super().__init__()
        cond = width // 4  # "conditioning MLP 1/4 of DiT's width"
        self.freq_dim = freq_dim
        self.embed = nn.Linear(patch_dim, width)
        self.register_buffer("pos", sincos_2d(width, int(math.isqrt(tokens))))
        self.t_mlp = nn.Sequential(nn.Linear(freq_dim, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.blocks = nn.ModuleList([Block(width, heads, cond) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(cond, 2 * width))
        self.out = nn.Linear(width, patch_dim)
        self.encoder_depth = depth // 2  # the first half of the blocks is the encoder (ViT-1/2L)
        # DiT's initialisation: Xavier-uniform linears, zero biases; N(0, 0.02) timestep MLP; adaLN-Zero.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.t_mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.ada[1].weight)
            nn.init.zeros_(blk.ada[1].bias)
        for m in (self.final_ada[1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def cond(self, t):
        return self.t_mlp(timestep_embedding(t, self.freq_dim))

    def encode(self, patches, t):  # [B, L, D] -> [B, L, W]
        c = self.cond(t)
        x = self.embed(patches) + self.pos
        for blk in self.blocks[: self.encoder_depth]:
            x = blk(x, c)
        return x

    def forward(self, patches, t):  # [B, L, D] -> [B, L, D]
        c = self.cond(t)
        x = self.embed(patches) + self.pos
        for blk in self.blocks:
            x = blk(x, c)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        return self.out(modulate(self.final_norm(x), shift, scale))


# ---------------------------------------------------------------- pre-training
def pretrain(args, pca, x_train, gen):
    torch.manual_seed(args.seed)
    tokens = (28 // args.patch) ** 2
    net = DenoisingViT(args.patch * args.patch, tokens, args.width, args.depth, args.heads)
    if args.save_init:
        save_reference_weights(net, args.save_init)
        raise SystemExit(f"initial weights written to {args.save_init}")
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    T = 1000
    if args.noise == "multi":
        sigma = torch.tensor([math.sqrt(2.0) * t / (T - 1) for t in range(T)], dtype=torch.float64)
    else:
        sigma = torch.full((T,), math.sqrt(1.0 / 3.0), dtype=torch.float64)
    lam = (1.0 / (1.0 + sigma ** 2)).float()
    sigma = sigma.float()
    w = torch.full((args.patch * args.patch,), args.residual_weight)
    w[: args.d] = 1.0
    warm = max(1, int(args.warmup * args.steps))
    n = x_train.shape[0]
    perm, at = torch.randperm(n, generator=gen), 0
    losses, started = [], time.time()
    for step in range(args.steps):
        lr = args.lr * (step + 1) / warm if step < warm else \
            args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm)))
        for g in opt.param_groups:
            g["lr"] = lr
        if at + args.batch > n:
            perm, at = torch.randperm(n, generator=gen), 0
        idx = perm[at: at + args.batch]
        at += args.batch
        x0 = to_patches(x_train[idx], args.patch)  # [B, L, D]
        t = torch.randint(0, T, (args.batch,), generator=gen)
        z0 = pca.encode(x0)
        z_t = z0 + sigma[t][:, None, None] * torch.randn(z0.shape, generator=gen)
        x_t = pca.decode(z_t)  # the noisy image (inverse PCA of the noisy latent)
        pred = net(x_t, t)
        r = (x0 - pred) @ pca.basis  # residual in the full PCA basis
        loss = (lam[t] * ((r ** 2) * w).sum(-1).mean(-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step)) if args.ema_warmup else args.ema
        with torch.no_grad():
            for k, v in net.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}/{args.steps} loss {np.mean(losses[-50:]):.4f} "
                  f"({(step + 1) * args.batch / (time.time() - started):.0f} img/s)", flush=True)
    net.load_state_dict(ema)
    return net, float(np.mean(losses[-50:]))


# ---------------------------------------------------------------- the linear probe
@torch.no_grad()
def features(net, pca, x, args):
    out = []
    for i in range(0, x.shape[0], 1000):
        p = to_patches(x[i: i + 1000], args.patch)
        if args.probe_input == "projected":
            p = pca.decode(pca.encode(p))
        t = torch.full((p.shape[0],), args.probe_t, dtype=torch.long)
        out.append(net.encode(p, t).mean(1))
    return torch.cat(out)


def linear_probe(ftr, ytr, fte, yte, args):
    mean, std = ftr.mean(0), ftr.std(0) + 1e-6  # BatchNorm without affine: standardise by the train statistics
    ftr, fte = (ftr - mean) / std, (fte - mean) / std
    gen = torch.Generator().manual_seed(0)
    clf = nn.Linear(ftr.shape[1], 10)
    opt = torch.optim.SGD(clf.parameters(), lr=args.probe_lr, momentum=0.9, weight_decay=0.0)
    per_epoch = math.ceil(ftr.shape[0] / args.probe_batch)
    total, warm = args.probe_epochs * per_epoch, max(1, args.probe_epochs // 10) * per_epoch
    it = 0
    for _ in range(args.probe_epochs):
        perm = torch.randperm(ftr.shape[0], generator=gen)
        for i in range(0, ftr.shape[0], args.probe_batch):
            lr = args.probe_lr * (it + 1) / warm if it < warm else \
                args.probe_lr * 0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i: i + args.probe_batch]
            loss = F.cross_entropy(clf(ftr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            it += 1
    with torch.no_grad():
        return 100.0 * (clf(fte).argmax(1) == yte).float().mean().item()


def save_reference_weights(net, path):
    """This file's model under bench/pytorch_ldae.py's key names (what `ddmlab pretrain --init-from` reads)."""
    from safetensors.torch import save_file
    back = [("embed.", "patch_embed."), ("t_mlp.0.", "t1."), ("t_mlp.2.", "t2."), (".qkv.", ".attn.qkv."),
            (".proj.", ".attn.proj."), (".mlp.0.", ".fc1."), (".mlp.2.", ".fc2."), (".ada.1.", ".ada_ln."),
            ("final_ada.1.", "final_ada."), ("out.", "final_proj.")]
    out = {}
    for key, value in net.state_dict().items():
        for a, b in back:
            if key.startswith(a) or (a.startswith(".") and a in key):
                key = key.replace(a, b, 1)
                break
        out[key] = value.contiguous()
    save_file(out, path)


def reference_weights(path):
    """A state_dict of this file's model from safetensors under bench/pytorch_ldae.py's key names."""
    from safetensors.torch import load_file
    renames = [("patch_embed.", "embed."), ("t1.", "t_mlp.0."), ("t2.", "t_mlp.2."), (".attn.qkv.", ".qkv."),
               (".attn.proj.", ".proj."), (".fc1.", ".mlp.0."), (".fc2.", ".mlp.2."), (".ada_ln.", ".ada.1."),
               ("final_ada.", "final_ada.1."), ("final_proj.", "out.")]
    out = {}
    for key, value in load_file(path).items():
        for a, b in renames:
            if key.startswith(a) or (a.startswith(".") and a in key):
                key = key.replace(a, b, 1)
        out[key] = value
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", choices=["multi", "single"], default="multi",
                    help="sigma_t linear 0..sqrt(2) over T = 1000, or one level sqrt(1/3)")
    ap.add_argument("--patch", type=int, default=7)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--pca-samples", type=int, default=100_000)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak lr (base lr x batch / 256)")
    ap.add_argument("--warmup", type=float, default=0.05, help="warm-up fraction of the steps")
    ap.add_argument("--residual-weight", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ema-warmup", type=int, default=1,
                    help="1: decay min(ema, (1+s)/(10+s)) (the paper does not say); 0: the plain decay")
    ap.add_argument("--probe-t", type=int, default=10)
    ap.add_argument("--probe-input", choices=["clean", "projected"], default="clean",
                    help="the clean image as it is, or its projection on the d kept PCA components")
    ap.add_argument("--probe-epochs", type=int, default=30)
    ap.add_argument("--probe-lr", type=float, default=0.1)
    ap.add_argument("--probe-batch", type=int, default=256)
    ap.add_argument("--probe-weights", default=None,
                    help="probe these weights (safetensors, bench/pytorch_ldae.py's key names) instead of training")
    ap.add_argument("--save-init", default=None,
                    help="write the initial weights (bench/pytorch_ldae.py's key names) for `ddmlab pretrain --init-from`, and stop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    pca = PatchPCA(x_train, args.patch, args.d, args.pca_samples, gen)
    started = time.time()
    if args.probe_weights:
        # Weights trained elsewhere (`ddmlab export --layout reference`), probed by this file's probe: what part
        # of a difference is the probe's.
        net = DenoisingViT(args.patch * args.patch, (28 // args.patch) ** 2, args.width, args.depth, args.heads)
        missing, unexpected = net.load_state_dict(reference_weights(args.probe_weights), strict=False)
        if [k for k in missing if k != "pos"] or unexpected:
            raise SystemExit(f"{args.probe_weights}: missing {missing}, unexpected {unexpected}")
        loss = float("nan")
    else:
        net, loss = pretrain(args, pca, x_train, gen)
    train_s = time.time() - started
    result = {"args": vars(args), "final_loss": loss, "train_seconds": train_s}
    for probe_input in ["clean"] if args.probe_weights else ["clean", "projected"]:
        args.probe_input = probe_input
        ftr, fte = features(net, pca, x_train, args), features(net, pca, x_test, args)
        result[f"probe_{probe_input}"] = linear_probe(ftr, y_train, fte, y_test, args)
        print(f"probe ({probe_input} input, t = {args.probe_t}): {result[f'probe_{probe_input}']:.2f}", flush=True)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
