#!/usr/bin/env python3
"""The conv tokenizer's building blocks in PyTorch, forward and forward + backward, beside
`cargo run --release --example profile_conv` (same sizes, one thread per call as set)."""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timed(name, f, flops=None):
    f()
    n = 5
    s = time.perf_counter()
    for _ in range(n):
        f()
    t = (time.perf_counter() - s) / n
    rate = f"  {flops / t / 1e9:>6.1f} GFLOP/s" if flops else ""
    print(f"{name:<56} {t * 1e3:>8.2f} ms{rate}")


if len(sys.argv) > 1:
    torch.set_num_threads(int(sys.argv[1]))
for b, c, s in [(16, 16, 32), (16, 32, 16), (16, 64, 8)]:
    conv, norm = nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c)
    x0 = torch.randn(b, c, s, s)
    x = lambda: x0.clone().requires_grad_(True)
    fwd = 2 * b * c * c * 9 * s * s
    timed(f"conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd", lambda: conv(x()).detach(), fwd)
    timed(f"conv3x3 {c}->{c} at {s}x{s}, batch {b}: fwd+bwd", lambda: conv(x()).sum().backward(), 3 * fwd)
    timed(f"groupnorm+silu {c} at {s}x{s}, batch {b}: fwd", lambda: F.silu(norm(x())).detach())
    timed(f"groupnorm+silu {c} at {s}x{s}, batch {b}: fwd+bwd", lambda: F.silu(norm(x())).sum().backward())
