#!/usr/bin/env python3
"""Read a ddmlab run folder's TensorBoard event files with TensorBoard's own reader and check
them against the run's metrics.jsonl: every metrics line is a `train/*` scalar event at its step
with the same values (to float32 precision), and each checkpoint grid is an image event.

    python bench/tensorboard_check.py RUN [RUN ...]      # needs `pip install tensorboard`

Prints one summary line per run and exits non-zero on the first mismatch.
"""
import json
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def flatten(line):
    """The numbers of a metrics line as ddmlab tags them (nested tables by field name)."""
    out = {}
    for k, v in line.items():
        if k == "step":
            continue
        if isinstance(v, dict):
            out.update(flatten(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def check(run):
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    with open(f"{run}/metrics.jsonl") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    worst = 0.0
    for key in sorted(flatten(lines[0])):
        events = acc.Scalars(f"train/{key}")
        by_step = {e.step: e.value for e in events}
        for line in lines:
            want = flatten(line)[key]
            got = by_step.get(line["step"])
            assert got is not None, f"{run}: train/{key} has no event at step {line['step']}"
            rel = abs(got - np.float32(want)) / max(abs(want), 1e-30)
            worst = max(worst, rel)
            assert rel < 1e-6, f"{run}: train/{key} at step {line['step']}: {got} vs {want}"
    images = {t: acc.Images(t) for t in tags["images"]}
    shown = ", ".join(
        f"{t}: {len(v)} at steps {[e.step for e in v]} ({v[-1].width}x{v[-1].height})" for t, v in images.items()
    )
    other = sorted(t for t in tags["scalars"] if not t.startswith("train/"))
    print(
        f"{run}: {len(lines)} metrics lines = {len(tags['scalars']) - len(other)} train/* scalar series, "
        f"largest relative difference {worst:.1e}; other scalars {other}; images {shown or 'none'}"
    )


if __name__ == "__main__":
    for run in sys.argv[1:]:
        check(run)
