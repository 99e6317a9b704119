#!/usr/bin/env python3
"""LTH14/mar's own MAR trained and sampled on a ddmlab run's tokens (issue 49, items 3 and 4), from a checkout of
the official code (commit fe470ac), its files imported unchanged; this driver shims only what a CPU lacks
(`Tensor.cuda`, `torch.cuda.amp.autocast`, the CUDA loss scaler: a plain backward, clip and step in f32).

The model is the official `models.mar.MAR` at the run's sizes (read from RUN/config.toml): the run's L tokens of d
as an image of side sqrt(L) with vae_stride 1 and patch 1, width, encoder / decoder depth, heads, MLP ratio, buffer,
classes, the Diffusion Loss head (width x depth, always the official 2 C outputs), diffusion_batch_mul from the run,
dropout 0, LayerNorm eps 1e-6 (as mar_base builds it).

    # the tokens: every training image's posterior in the run's scaled token space
    ddmlab tokenizer encode --run RUN --out RUN/tokens-train.safetensors
    # item 4: the official training step on those tokens (a posterior sample per step, as engine_mar.py draws it)
    python bench/mar_official.py train LTH14 RUN --tokens RUN/tokens-train.safetensors --steps 3447 --seed 0 \
        --out official-seed0.safetensors       # the EMA weights under the official names
    # item 3 (and 4's FID): the official sample_tokens on weights in the official layout (ddmlab's export or the
    # above), then ddmlab decodes and scores them
    python bench/mar_official.py sample LTH14 RUN --weights W.safetensors --n 5000 --cfg 1.0 --seed 0 --out tok.safetensors
    ddmlab tokenizer decode --run RUN --tokens tok.safetensors --npz tok.npz
    ddmlab fid --a tok.npz --b fashion-mnist:test --n 5000

Training settings default to the run's (batch, lr = blr batch / 256, linear warm-up over warmup_frac of the steps
then constant, AdamW (beta1, beta2), weight decay with the official groups (util/misc.py::add_weight_decay: none on
1-D tensors and on the head), global-norm clip, EMA decay with the run's warm-up min(decay, (1 + s) / (10 + s)) when
its train.ema_warmup is on, as mar-fmnist's is); `--official-ema` keeps the official constant decay from the first
step whatever the run says.
"""
import argparse
import json
import math
import os
import sys
import time
import tomllib

import numpy as np
import torch
from safetensors.numpy import load_file, save_file


def shim_cpu():
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self


def official_model(official, run, learn_sigma_steps="100"):
    sys.path.insert(0, official)
    shim_cpu()
    from functools import partial
    from models.mar import MAR

    with open(os.path.join(run, "config.toml"), "rb") as f:
        config = tomllib.load(f)
    m, mar = config["model"], config["mar"]
    if mar.get("variant", "mar") != "mar" or mar.get("loss", "diffusion") != "diffusion":
        raise SystemExit(f"{run}: the official MAR is bidirectional with the Diffusion Loss, this run is "
                         f"{mar.get('variant')} / {mar.get('loss')}")
    return config, partial(
        MAR, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), vae_stride=1, patch_size=1,
        encoder_embed_dim=m["width"], encoder_depth=m["encoder_depth"], encoder_num_heads=m["heads"],
        decoder_embed_dim=m["width"], decoder_depth=m["depth"] - m["encoder_depth"], decoder_num_heads=m["heads"],
        mlp_ratio=m["mlp_ratio"], class_num=m["num_classes"], attn_dropout=0.0, proj_dropout=0.0,
        buffer_size=mar["buffer"], diffloss_d=mar["head_depth"], diffloss_w=mar["head_width"],
        diffusion_batch_mul=mar["diffusion_repeat"], mask_ratio_min=mar["min_mask_ratio"],
        label_drop_prob=config["denoise"].get("class_dropout", 0.1), num_sampling_steps=learn_sigma_steps)


def build(ctor, seq_len, token_dim):
    side = int(round(math.sqrt(seq_len)))
    if side * side != seq_len:
        raise SystemExit(f"{seq_len} tokens are not a square grid: the official MAR reads a square latent")
    return ctor(img_size=side, vae_embed_dim=token_dim)


def train(args):
    config, ctor = official_model(args.official, args.run)
    t = config["train"]
    cache = load_file(args.tokens)
    mean, std, labels = (torch.from_numpy(cache[k]) for k in ("mean", "std", "labels"))
    n, seq_len, d = mean.shape
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = build(ctor, seq_len, d)
    sys.path.insert(0, args.official)
    from util.misc import add_weight_decay
    batch = args.batch or t["batch_size"]
    lr = args.lr or t["blr"] * batch / 256
    steps = args.steps or t["steps"]
    warmup = args.warmup_frac if args.warmup_frac is not None else t["warmup_frac"]
    decay, clip, ema_rate = t["weight_decay"], t["grad_clip"], t["ema_decay"]
    warm = round(warmup * steps)
    ema_warmup = t.get("ema_warmup", True) and not args.official_ema
    optimizer = torch.optim.AdamW(add_weight_decay(model, decay), lr=lr, betas=(t["beta1"], t["beta2"]),
                                  eps=t.get("adam_eps", 1e-8))
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    log = open(args.out + ".metrics.jsonl", "w")
    gen = torch.Generator().manual_seed(args.seed)
    started = time.time()
    model.train(True)
    for step in range(steps):
        # engine_mar.py: a per-iteration lr (linear warm-up over ddmlab's round(warmup_frac steps), then constant).
        cur = lr * step / warm if step < warm else lr
        for g in optimizer.param_groups:
            g["lr"] = cur
        idx = torch.randint(0, n, (batch,), generator=gen)
        with torch.no_grad():
            tokens = mean[idx] + std[idx] * torch.randn(batch, seq_len, d, generator=gen)
            x = model.unpatchify(tokens)  # [B, d, side, side]
        loss = model(x, labels[idx])
        if not math.isfinite(loss.item()):
            raise SystemExit(f"loss is {loss.item()} at step {step + 1}")
        loss.backward()  # the loss scaler without CUDA: backward, clip, step (f32)
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad()
        rate = min(ema_rate, (1 + step) / (10 + step)) if ema_warmup else ema_rate
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(rate).add_(p.detach(), alpha=1 - rate)
        if (step + 1) % 10 == 0 or step + 1 == steps:
            line = dict(step=step + 1, loss=loss.item(), lr=cur, s=round(time.time() - started, 1))
            log.write(json.dumps(line) + "\n")
            log.flush()
            if (step + 1) % 100 == 0:
                print(line, flush=True)
    names = [k for k, _ in model.named_parameters()]
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    for k, e in zip(names, ema):
        state[k] = e.numpy().copy()
    meta = dict(official_commit="fe470ac24afbee924668d8c5c83e9fec60af3a73", torch=torch.__version__, steps=steps,
                batch=batch, lr=lr, warmup_frac=warmup, weight_decay=decay, grad_clip=clip, ema=ema_rate,
                ema_warmup=ema_warmup, seed=args.seed, seconds=round(time.time() - started, 1))
    save_file(state, args.out, metadata={"run": json.dumps(meta)})
    print(f"{args.out}: EMA weights after {steps} steps ({meta['seconds']} s)")


def sample(args):
    config, ctor = official_model(args.official, args.run, str(args.head_steps))
    weights = load_file(args.weights)
    d = weights["z_proj.weight"].shape[1]
    seq_len = weights["diffusion_pos_embed_learned"].shape[1]
    model = build(ctor, seq_len, d)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    model.eval()
    classes = config["model"]["num_classes"]
    labels = np.arange(args.n) % classes if classes else np.zeros(args.n, dtype=np.int64)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    out, started = [], time.time()
    with torch.no_grad():
        for lo in range(0, args.n, args.batch):
            y = torch.from_numpy(labels[lo:lo + args.batch]).long()
            x = model.sample_tokens(len(y), num_iter=args.num_iter, cfg=args.cfg, cfg_schedule="linear",
                                    labels=y if classes else None, temperature=args.temperature)
            out.append(model.patchify(x).numpy())
            print(f"{lo + len(y)}/{args.n} ({time.time() - started:.0f} s)", flush=True)
    tokens = np.concatenate(out).astype(np.float32)
    meta = dict(official_commit="fe470ac24afbee924668d8c5c83e9fec60af3a73", num_iter=args.num_iter, cfg=args.cfg,
                temperature=args.temperature, head_steps=args.head_steps, seed=args.seed,
                seconds=round(time.time() - started, 1))
    save_file({"tokens": tokens, "labels": labels.astype(np.int64)}, args.out, metadata={"sampling": json.dumps(meta)})
    print(f"{args.out}: {args.n} token sequences ({meta['seconds']} s)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train")
    sa = sub.add_parser("sample")
    for q in (tr, sa):
        q.add_argument("official", help="a checkout of LTH14/mar")
        q.add_argument("run", help="the ddmlab run folder (its config.toml gives the sizes and settings)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--out", required=True)
    tr.add_argument("--tokens", required=True, help="`ddmlab tokenizer encode` output")
    tr.add_argument("--steps", type=int)
    tr.add_argument("--batch", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--warmup-frac", type=float)
    tr.add_argument("--official-ema", action="store_true", help="the constant EMA decay from the first step")
    sa.add_argument("--weights", required=True, help="official-layout safetensors (ddmlab export --layout mar)")
    sa.add_argument("--n", type=int, default=5000)
    sa.add_argument("--batch", type=int, default=250)
    sa.add_argument("--num-iter", type=int, default=64)
    sa.add_argument("--cfg", type=float, default=1.0)
    sa.add_argument("--temperature", type=float, default=1.0)
    sa.add_argument("--head-steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    train(args) if args.command == "train" else sample(args)


if __name__ == "__main__":
    main()
