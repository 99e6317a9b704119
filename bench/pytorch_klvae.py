#!/usr/bin/env python3
"""The conv KL tokenizer's training step in PyTorch, as latent diffusion writes it, for side-by-side timing.

  bench  time one step (autoencoder update with L1 + perceptual + KL + adaptive-weighted hinge GAN,
         then the discriminator update) on synthetic images; `ddmlab bench --tokenizer PRESET --pytorch`
         prints the ratio.

The networks mirror ddmlab's (`models/conv_ae.rs`, `models/patchgan.rs`, `models/classifier.rs`) read from a ddmlab
tokenizer config.toml; the loss is CompVis/latent-diffusion's `LPIPSWithDiscriminator` (adaptive weight by
`torch.autograd.grad` at the decoder's last layer) with ddmlab's classifier features in place of LPIPS's VGG.
Needs `pip install torch numpy`. It is a benchmark and a reference, never a test dependency.
"""

import argparse
import json
import resource
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, s=1):
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), conv(cin, cout, 3)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), conv(cout, cout, 3)
        self.shortcut = conv(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.shortcut(x) if self.shortcut is not None else x) + h


class Attn(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.q, self.k, self.v, self.proj = (conv(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, c, h * w).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=2)
        return x + self.proj((a @ v).transpose(1, 2).reshape(b, c, h, w))


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.b1, self.attn, self.b2 = ResBlock(c, c, groups), Attn(c, groups), ResBlock(c, c, groups)

    def forward(self, x):
        return self.b2(self.attn(self.b1(x)))


class KLAutoencoder(nn.Module):
    def __init__(self, m):
        super().__init__()
        ch, mult, g, z, c = m["channels"], m["channel_mult"], m["groups"], m["z_channels"], m["image"]["channels"]
        widths = [ch * k for k in mult]
        self.sizes = [(m["image"]["height"], m["image"]["width"])]
        for _ in mult[1:]:
            h, w = self.sizes[-1]
            self.sizes.append(((h + 1) // 2, (w + 1) // 2))
        self.conv_in = conv(c, ch, 3)
        self.down, w_in = nn.ModuleList(), ch
        for i, w in enumerate(widths):
            blocks = nn.ModuleList(ResBlock(w_in if j == 0 else w, w, g) for j in range(m["res_blocks"]))
            self.down.append(nn.ModuleDict({"blocks": blocks, **({"sample": conv(w, w, 3, 2)} if i + 1 < len(widths) else {})}))
            w_in = w
        top = widths[-1]
        self.enc_mid, self.enc_norm, self.enc_out = Mid(top, g), nn.GroupNorm(g, top), conv(top, 2 * z, 3)
        self.quant, self.post_quant = conv(2 * z, 2 * z, 1), conv(z, z, 1)
        self.dec_in, self.dec_mid = conv(z, top, 3), Mid(top, g)
        self.up, w_in = nn.ModuleList(), top
        for i in reversed(range(len(widths))):
            w = widths[i]
            blocks = nn.ModuleList(ResBlock(w_in if j == 0 else w, w, g) for j in range(m["res_blocks"]))
            self.up.append(nn.ModuleDict({"blocks": blocks, **({"sample": conv(w, w, 3)} if i > 0 else {})}))
            w_in = w
        self.dec_norm, self.dec_out = nn.GroupNorm(g, widths[0]), conv(widths[0], c, 3)

    def encode(self, x):
        h = self.conv_in(x)
        for level in self.down:
            for b in level["blocks"]:
                h = b(h)
            if "sample" in level:
                h = level["sample"](h)
        h = self.enc_out(F.silu(self.enc_norm(self.enc_mid(h))))
        mean, logvar = self.quant(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        h = self.dec_mid(self.dec_in(self.post_quant(z)))
        n = len(self.sizes)
        for i, level in enumerate(self.up):
            for b in level["blocks"]:
                h = b(h)
            if "sample" in level:
                h = level["sample"](F.interpolate(h, size=self.sizes[n - 2 - i], mode="nearest"))
        return self.dec_out(F.silu(self.dec_norm(h)))


class PatchGan(nn.Module):
    def __init__(self, cin, ndf, layers):
        super().__init__()
        width = lambda n: ndf * 2 ** min(n, 3)
        seq = [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        for n in range(1, layers):
            seq += [nn.Conv2d(width(n - 1), width(n), 4, 2, 1, bias=False), nn.BatchNorm2d(width(n)), nn.LeakyReLU(0.2)]
        seq += [nn.Conv2d(width(layers - 1), width(layers), 4, 1, 1, bias=False), nn.BatchNorm2d(width(layers)),
                nn.LeakyReLU(0.2), nn.Conv2d(width(layers), 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)

    def forward(self, x):
        return self.main(x)


class Classifier(nn.Module):
    def __init__(self, cin, widths):
        super().__init__()
        self.stages, c = nn.ModuleList(), cin
        for w in widths:
            self.stages.append(nn.Sequential(conv(c, w, 3), nn.ReLU(), conv(w, w, 3), nn.ReLU()))
            c = w

    def features(self, x):
        out, h = [], x
        for k, s in enumerate(self.stages):
            h = s(F.max_pool2d(h, 2) if k > 0 else h)
            out.append(h)
        return out


def perceptual(net, a, b):
    total = 0.0
    for fa, fb in zip(net.features(a), net.features(b)):
        na = fa / (fa.square().sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.square().sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + (na - nb).square().sum(1).mean((1, 2))
    return total


def step(ae, disc, clf, opt_ae, opt_d, x, loss_cfg):
    mean, logvar = ae.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    x_hat = ae.decode(z)
    pixels = x[0].numel()
    rec = (x - x_hat).abs()
    p = perceptual(clf, x_hat, x)
    nll = (rec.flatten(1).sum(1) + loss_cfg["perceptual_weight"] * pixels * p).mean()
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
    g_loss = -disc(x_hat).mean()
    last = ae.dec_out.weight
    nll_grad = torch.autograd.grad(nll, last, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    d_weight = (nll_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach() * loss_cfg["disc_weight"]
    loss = nll + loss_cfg["kl_weight"] * kl + d_weight * g_loss
    opt_ae.zero_grad(set_to_none=True)
    loss.backward()
    opt_ae.step()
    real, fake = disc(x), disc(x_hat.detach())
    d_loss = 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["bench"])
    ap.add_argument("--config", required=True, help="a ddmlab tokenizer config.toml")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    m, loss_cfg, t = cfg["model"], cfg["loss"], cfg["train"]
    torch.manual_seed(0)
    ae = KLAutoencoder(m)
    disc = PatchGan(m["image"]["channels"], loss_cfg["disc_channels"], loss_cfg["disc_layers"])
    clf = Classifier(m["image"]["channels"], cfg["perceptual"]["widths"]).requires_grad_(False)
    betas = (t["beta1"], t["beta2"])
    opt_ae = torch.optim.Adam(ae.parameters(), lr=t["lr"], betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=t["lr"], betas=betas)
    b, c, h, w = t["batch_size"], m["image"]["channels"], m["image"]["height"], m["image"]["width"]
    batch = lambda s: (((torch.arange(b * c * h * w) * 7919 + s) % 255).float() / 127.5 - 1.0).reshape(b, c, h, w)
    for s in range(3):
        step(ae, disc, clf, opt_ae, opt_d, batch(s), loss_cfg)
    start = time.perf_counter()
    for s in range(args.steps):
        step(ae, disc, clf, opt_ae, opt_d, batch(3 + s), loss_cfg)
    secs = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"img_per_s": args.steps * b / secs, "ms_per_step": 1000 * secs / args.steps,
                      "threads": torch.get_num_threads(), "peak_rss_mb": peak_mb, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
