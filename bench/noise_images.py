#!/usr/bin/env python3
"""Write N grey 28x28 PNGs of clipped Gaussian noise (mean 127.5, std 64): the "huge FID" end of
the FID sanity check in BENCHMARKS.md. Standard library only.

  bench/noise_images.py 5000 runs/noise
"""
import os
import random
import struct
import sys
import zlib


def png_grey(path, pixels, width, height):
    rows = b"".join(b"\x00" + bytes(pixels[r * width : (r + 1) * width]) for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main(n, out, seed=0):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        px = [min(255, max(0, round(rng.gauss(127.5, 64)))) for _ in range(28 * 28)]
        png_grey(os.path.join(out, f"{i:06d}.png"), px, 28, 28)
    print(f"{out}: {n} noise images")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), sys.argv[2])
