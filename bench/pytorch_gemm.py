#!/usr/bin/env python3
"""torch.mm's f32 GEMM throughput for `ddmlab bench --gemm N --pytorch`: C = A B with A, B of N x N, `reps` products
after one warm-up, on `threads` threads. Prints one JSON line: {"img_per_s": GFLOP/s, "torch": version,
"peak_rss_mb": ...} (the bench's one figure field; here the unit is GFLOP/s, 2 N^3 flops per product)."""
import argparse
import json
import resource
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, required=True)
p.add_argument("--reps", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
x, y = torch.randn(a.n, a.n), torch.randn(a.n, a.n)
torch.mm(x, y)
start = time.perf_counter()
for _ in range(a.reps):
    z = torch.mm(x, y)
secs = time.perf_counter() - start
print(json.dumps({"img_per_s": 2 * a.n ** 3 * a.reps / secs / 1e9, "torch": torch.__version__,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
