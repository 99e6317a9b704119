#!/usr/bin/env python3
"""Writes the fixtures of crates/ddmlab/tests/interop.rs: tiny PyTorch models whose weights ddmlab imports.

    python3 bench/interop_fixtures.py crates/ddmlab/tests/fixtures/interop

1. `reference.safetensors` + `reference_io.npz`: bench/pytorch_ldae.py's DenoisingVit (the l-DAE / DiT reference
   ddmlab is measured against), random weights everywhere (adaLN and output layers too, so that every tensor matters),
   its state_dict written as safetensors by PyTorch's own tensors, and its output on fixed inputs.
2. `dit.pt` + `dit_io.npz`: a model with the layout of facebookresearch/DiT's models.py (x_embedder conv patch
   embedding, t_embedder.mlp.{0,2}, y_embedder.embedding_table, blocks.N.adaLN_modulation.1, final_layer.linear,
   learn_sigma output of 2C channels, tanh GELU, pos_embed in the state_dict), saved with torch.save like the
   official checkpoints, and its output.
3. `reference_skip.safetensors` + `reference_skip_io.npz`: the reference model with U-ViT's long skips
   (`model.long_skip`), as 1.

With `--check EXPORTED.safetensors` it instead loads a file written by `ddmlab export` (reference layout) into the
reference model with strict=True and prints the largest difference between its output and reference_io.npz's.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_ldae  # noqa: E402

# The tiny configurations; tests/interop.rs builds the same ones.
REFERENCE = {
    "image": {"channels": 2, "height": 8, "width": 8},
    "patch": 2, "width": 32, "depth": 3, "encoder_depth": 2, "heads": 4, "mlp_ratio": 4.0,
    "cond_width": 16, "freq_dim": 32, "num_classes": 3,
}
# The reference model with U-ViT's long skips: 5 blocks, so two skip pairs around a middle block, the encoder
# ending between them.
REFERENCE_SKIP = dict(REFERENCE, depth=5, long_skip=True)
DIT = {"input_size": 8, "patch_size": 2, "in_channels": 2, "hidden_size": 32, "depth": 2, "num_heads": 4,
       "num_classes": 3}


save_safetensors = pytorch_ldae.save_safetensors
load_safetensors = pytorch_ldae.load_safetensors


def randomise(model, gen):
    """Every trained tensor drawn at random (the zero-initialised adaLN and output layers included)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "pos_embed":
                continue
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 / math.sqrt(max(1, p.shape[-1])) + 0.05))


# ---------------------------------------------------------------- DiT, with the names of facebookresearch/DiT
def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):  # timm's: a strided conv, tokens in raster order
    def __init__(self, p, c, hidden):
        super().__init__()
        self.proj = nn.Conv2d(c, hidden, kernel_size=p, stride=p, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden, freq=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.freq = freq

    def forward(self, t):
        half = self.freq // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, hidden):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden)

    def forward(self, y):
        return self.embedding_table(y)


class Attention(nn.Module):  # timm's, qkv_bias=True
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):  # timm's, with DiT's tanh GELU
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    def __init__(self, hidden, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x, c):
        sm, cm, gm, sp, cp, gp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gm.unsqueeze(1) * self.attn(modulate(self.norm1(x), sm, cm))
        return x + gp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sp, cp))


class FinalLayer(nn.Module):
    def __init__(self, hidden, p, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, p * p * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    def __init__(self, input_size, patch_size, in_channels, hidden_size, depth, num_heads, num_classes,
                 mlp_ratio=4.0, learn_sigma=True):
        super().__init__()
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.p = patch_size
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        g = input_size // patch_size
        pos = pytorch_ldae.sincos_2d(hidden_size, g, g)  # MAE's table, as DiT's get_2d_sincos_pos_embed
        self.pos_embed = nn.Parameter(pos, requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        x = self.final_layer(x, c)
        n, h = x.shape[0], int(x.shape[1] ** 0.5)
        x = x.reshape(n, h, h, self.p, self.p, self.out_channels)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(n, self.out_channels, h * self.p, h * self.p)


def inputs(c, size, gen):
    x = torch.randn(3, c, size, size, generator=gen)
    t = torch.tensor([0, 17, 999])
    y = torch.tensor([0, 2, 3])  # 3: the null class
    return x, t, y


def write(model, channels, size, gen, weights, save):
    """Randomise `model`, save its state_dict to `weights` with `save`, and its output on fixed inputs to
    `<weights stem>_io.npz`."""
    model.eval()
    randomise(model, gen)
    x, t, y = inputs(channels, size, gen)
    with torch.no_grad():
        out = model(x, t, y)
    save(model.state_dict(), weights)
    io = os.path.splitext(weights)[0] + "_io.npz"
    np.savez(io, x=x.numpy(), t=t.numpy(), y=y.numpy(), out=out.numpy())


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if sys.argv[1] == "--check":
        exported, io = sys.argv[2], np.load(sys.argv[3])
        model = pytorch_ldae.DenoisingVit(REFERENCE)
        model.load_state_dict(load_safetensors(exported), strict=True)
        with torch.no_grad():
            out = model(torch.from_numpy(io["x"]), torch.from_numpy(io["t"]), torch.from_numpy(io["y"]))
        print(f"max |PyTorch(ddmlab export) - reference| = {np.abs(out.numpy() - io['out']).max():.3e}")
        return
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)

    write(pytorch_ldae.DenoisingVit(REFERENCE), REFERENCE["image"]["channels"], REFERENCE["image"]["height"], gen,
          os.path.join(out_dir, "reference.safetensors"), save_safetensors)
    write(DiT(**DIT), DIT["in_channels"], DIT["input_size"], gen, os.path.join(out_dir, "dit.pt"), torch.save)
    write(pytorch_ldae.DenoisingVit(REFERENCE_SKIP), REFERENCE_SKIP["image"]["channels"],
          REFERENCE_SKIP["image"]["height"], gen, os.path.join(out_dir, "reference_skip.safetensors"), save_safetensors)
    for f in sorted(os.listdir(out_dir)):
        print(f, os.path.getsize(os.path.join(out_dir, f)))


if __name__ == "__main__":
    main()
