#!/usr/bin/env python3
"""The PyTorch mirror of ddmlab's MAR training step (issue 12): the same network (MAE-style encoder over the visible
tokens plus class buffer, decoder with mask tokens, the Diffusion Loss MLP of LTH14/mar's SimpleMLPAdaLN), the same
draws per step (one truncated-Gaussian mask ratio per batch, a random order per image, 10% label drop, t and noise
drawn `diffusion_repeat` times per masked token) and the same optimiser step (AdamW, global-norm clip).

  bench  time the training step on synthetic images (img/s, peak memory); `ddmlab bench --preset <a MAR preset>
         --pytorch` runs it beside ddmlab's own step and prints the ratio.

The config is a ddmlab run's config.toml with a [mar] section and a pixels tokenizer (the tokens are the image's
patches, so both sides time the same work; a conv VAE's encoder would add a tokenizer forward to both). Needs
`pip install torch numpy`. A benchmark, never a test dependency.
"""
import argparse
import json
import math
import os
import resource
import sys
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_ldae import patchify, timestep_features  # noqa: E402


# ---------------------------------------------------------------- model (mirrors crates/ddmlab/src/models/mar.rs)
class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, causal=False):  # [B, L, W]
        b, l, w = x.shape
        qkv = self.qkv(x).reshape(b, l, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(b, l, w))


class VitBlock(nn.Module):
    """timm's pre-LN Block: x += Attn(LN(x)); x += MLP(LN(x)), affine LayerNorms (eps 1e-6), erf GELU."""

    def __init__(self, width, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x, causal=False):
        x = x + self.attn(self.norm1(x), causal)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class HeadBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.ada = nn.Linear(width, 3 * width)

    def forward(self, h, c_act):
        shift, scale, gate = self.ada(c_act).chunk(3, dim=1)
        x = self.norm(h) * (1 + scale) + shift
        return h + gate * self.fc2(F.silu(self.fc1(x)))


class DiffusionHead(nn.Module):
    """SimpleMLPAdaLN: h = W_in x_t; c = t_emb(t) + W_z z; residual adaLN blocks; modulated output (eps only)."""

    def __init__(self, token_dim, cond_dim, width, depth, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.input = nn.Linear(token_dim, width)
        self.t1 = nn.Linear(freq_dim, width)
        self.t2 = nn.Linear(width, width)
        self.cond = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList([HeadBlock(width) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width)
        self.output = nn.Linear(width, token_dim)

    def forward(self, x_t, t, z):
        c = self.t2(F.silu(self.t1(timestep_features(t, self.freq_dim)))) + self.cond(z)
        c_act = F.silu(c)
        h = self.input(x_t)
        for blk in self.blocks:
            h = blk(h, c_act)
        shift, scale = self.final_ada(c_act).chunk(2, dim=1)
        return self.output(self.final_norm(h) * (1 + scale) + shift)


class Mar(nn.Module):
    def __init__(self, cfg, token_dim, seq_len):
        super().__init__()
        m, mar = cfg["model"], cfg["mar"]
        w, buf = m["width"], mar["buffer"]
        hidden = round(w * m["mlp_ratio"])
        self.buffer, self.seq_len = buf, seq_len
        self.num_classes = m["num_classes"]
        self.class_emb = nn.Embedding(self.num_classes + 1, w)
        self.z_proj = nn.Linear(token_dim, w)
        self.z_proj_ln = nn.LayerNorm(w, eps=1e-6)
        self.enc_pos = nn.Parameter(torch.randn(1, buf + seq_len, w) * 0.02)
        enc, dec = m["encoder_depth"], m["depth"] - m["encoder_depth"]
        self.enc_blocks = nn.ModuleList([VitBlock(w, m["heads"], hidden) for _ in range(enc)])
        self.enc_norm = nn.LayerNorm(w, eps=1e-6)
        self.dec_embed = nn.Linear(w, w)
        self.mask_token = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.dec_pos = nn.Parameter(torch.randn(1, buf + seq_len, w) * 0.02)
        self.dec_blocks = nn.ModuleList([VitBlock(w, m["heads"], hidden) for _ in range(dec)])
        self.dec_norm = nn.LayerNorm(w, eps=1e-6)
        self.head_pos = nn.Parameter(torch.randn(1, seq_len, w) * 0.02)
        self.head = DiffusionHead(token_dim, w, mar["head_width"], mar["head_depth"])
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.class_emb.weight, std=0.02)
        for lin in [b.ada for b in self.head.blocks] + [self.head.final_ada, self.head.output]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, tokens, mask, labels):
        """tokens [B, L, C]; mask [B, L] bool with one masked count per row; labels [B] -> z [B, L, W]."""
        b, l, _ = tokens.shape
        buf = self.buffer
        x = self.z_proj(tokens)
        w = x.shape[2]
        cls = self.class_emb(labels).unsqueeze(1).expand(b, buf, w)
        x = self.z_proj_ln(torch.cat([cls, x], dim=1) + self.enc_pos)
        keep = torch.cat([torch.ones(b, buf, dtype=torch.bool), ~mask], dim=1)  # [B, buf + L]
        x = x[keep].reshape(b, -1, w)
        for blk in self.enc_blocks:
            x = blk(x)
        x = self.dec_embed(self.enc_norm(x))
        full = self.mask_token.expand(b, buf + l, w).clone()
        full[keep] = x.reshape(-1, w)
        x = full + self.dec_pos
        for blk in self.dec_blocks:
            x = blk(x)
        return self.dec_norm(x)[:, buf:] + self.head_pos


# ---------------------------------------------------------------- objective (mirrors crates/ddmlab/src/mar)
def cosine_tables(steps=1000, s=0.008):
    """Improved DDPM's cosine schedule in float64: (gamma_t, sigma_t) per t, betas clipped at 0.999."""
    f = lambda t: math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2
    abar, prod = [], 1.0
    for t in range(steps):
        prod *= 1 - min(1 - f(t + 1) / f(t), 0.999)
        abar.append(prod)
    abar = torch.tensor(abar, dtype=torch.float64)
    return abar.sqrt().float(), (1 - abar).sqrt().float()


def mask_ratio(gen, min_ratio, std=0.25):
    cut = (1 - min_ratio) / std
    while True:
        z = abs(torch.randn(1, generator=gen).item())
        if z <= cut:
            return 1 - std * z


def draws(gen, b, l, mar, classes, labels):
    count = min(max(math.ceil(l * mask_ratio(gen, mar["min_mask_ratio"])), 1), l)
    orders = torch.argsort(torch.rand(b, l, generator=gen), dim=1)
    mask = torch.zeros(b, l, dtype=torch.bool)
    mask.scatter_(1, orders[:, :count], True)
    drop = torch.rand(b, generator=gen) < 0.1
    labels = torch.where(drop, torch.full_like(labels, classes), labels)
    return mask, labels


def diffusion_loss(model, tokens, mask, labels, repeat, gamma, sigma, gen):
    z = model(tokens, mask, labels)
    z, x0 = z[mask].repeat(repeat, 1), tokens[mask].repeat(repeat, 1)  # [M r, W], [M r, C]
    t = torch.randint(0, gamma.shape[0], (x0.shape[0],), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    x_t = gamma[t, None] * x0 + sigma[t, None] * eps
    return (model.head(x_t, t, z) - eps).square().mean()


# ---------------------------------------------------------------- bench
def cmd_bench(args, cfg):
    m, mar, tok, t = cfg["model"], cfg["mar"], cfg["denoise"]["tokenizer"], cfg["train"]
    if tok["kind"] != "pixels":
        sys.exit(f"denoise.tokenizer.kind = {tok['kind']!r}: the MAR bench mirrors a pixels tokenizer")
    if mar.get("variant", "mar") != "mar" or mar.get("loss", "diffusion") != "diffusion":
        sys.exit("the MAR bench mirrors the bidirectional MAR with the Diffusion Loss")
    c, h, w, p = m["image"]["channels"], m["image"]["height"], m["image"]["width"], tok["patch"]
    seq_len, token_dim = (h // p) * (w // p), p * p * c
    torch.manual_seed(t["seed"])
    model = Mar(cfg, token_dim, seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(t["beta1"], t["beta2"]), eps=t["adam_eps"],
                            weight_decay=t["weight_decay"])
    gamma, sigma = cosine_tables()
    gen = torch.Generator().manual_seed(0)
    b, classes = args.batch_size, m["num_classes"]

    def batch():
        x0 = torch.rand(b, c, h, w, generator=gen) * 2 - 1
        return x0, torch.randint(0, max(classes, 1), (b,), generator=gen)

    def step(bt):
        x0, y = bt
        tokens = patchify(x0, p)
        mask, labels = draws(gen, b, seq_len, mar, classes, y)
        loss = diffusion_loss(model, tokens, mask, labels, mar["diffusion_repeat"], gamma, sigma, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        return loss.item()

    for _ in range(3):
        step(batch())
    batches = [batch() for _ in range(args.steps)]
    start = time.perf_counter()
    for bt in batches:
        step(bt)
    secs = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"img_per_s": args.steps * b / secs, "ms_per_step": 1000 * secs / args.steps,
                      "threads": torch.get_num_threads(), "peak_rss_mb": peak_mb, "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["bench"])
    ap.add_argument("--config", required=True, help="a ddmlab config.toml with a [mar] section")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cfg", type=float, default=1.0, help="accepted for ddmlab bench's command line; unused")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    cmd_bench(args, cfg)


if __name__ == "__main__":
    main()
