#!/usr/bin/env python3
"""Fixtures of crates/ddmlab/tests/integration/mar_official.rs: LTH14/mar's own `MAR` at `mar-fmnist`'s size, on
weights both sides compute from one rule, run on fixed inputs; the Rust test matches ddmlab to every recorded number
without PyTorch.

    git clone https://github.com/LTH14/mar /tmp/lth14-mar && git -C /tmp/lth14-mar checkout fe470ac
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch timm scipy safetensors numpy
    /tmp/venv/bin/python bench/mar_official_fixtures.py /tmp/lth14-mar crates/ddmlab/tests/fixtures/mar-official
    /tmp/venv/bin/python bench/mar_official_fixtures.py /tmp/lth14-mar /tmp/mar-paper --paper   # see paper_constructors

The official files are imported as they are; the driver shims only what a CPU lacks (`Tensor.cuda` returns the
tensor). The model is `models.mar.MAR` built as `mar_base` builds it (LayerNorm eps 1e-6) with mar-fmnist's sizes:
img_size 32, vae_stride 4, patch_size 1, vae_embed_dim 2 (64 tokens of 2), width 128, 4 + 4 blocks of 4 heads,
buffer 16, Diffusion Loss head 3 x 256 (2 C outputs: eps and the learned variance), diffusion_batch_mul 4, class_num
10, dropout 0.

Weights: every tensor of the official state_dict from counter-based splitmix64 seeded by the FNV-1a hash of its
official name (`weight_values`): LayerNorm weights 1 + 0.1 u, biases 0.05 u, everything else u sqrt(3 / fan_in), u
uniform in [-1, 1); all zero-initialised layers (adaLN, output) are then non-zero, so every tensor matters.

Recorded (safetensors `fixture.safetensors`, its metadata the sizes, the official commit and torch's version):
- inputs: `tokens` [4, 64, 2], `labels` (10 = the null class, read as `fake_latent`), `mask` (48 of 64 masked, the
  head of a random order), and per head row (image-major, 4 repeats of each masked token in sequence order,
  ddmlab's row order) `t` and `noise`;
- `encoder` = forward_mae_encoder(tokens, mask, class embedding) [4, 32, 128], `decoder` = forward_mae_decoder
  [4, 64, 128] (z, with the head's positions);
- `head_out` = diffloss.net(x_t, t, z rows) [768, 4], with x_t = train_diffusion.q_sample(target, t, noise);
- `mse`, `vb` [768]: train_diffusion.training_losses' terms per row (loss = mse + vb), and `loss` their mean (the
  official masked mean over these rows);
- the gradient of `loss` per tensor: `grad_norm.NAME` (L2 norm) and `grad.NAME` (8 entries at i n / 8);
- one step of the official optimizer on that gradient (AdamW (0.9, 0.95), lr 1e-3, weight decay 0.02 on the groups
  of util.misc.add_weight_decay: no decay on 1-D tensors, biases and the Diffusion Loss head; grads clipped to norm
  3 as engine_mar's loss scaler): `step.NAME`, the same 8 entries of the updated weights.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

MASK64 = (1 << 64) - 1
SIZES = dict(img_size=32, vae_stride=4, patch_size=1, vae_embed_dim=2, encoder_embed_dim=128, encoder_depth=4,
             encoder_num_heads=4, decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4, mlp_ratio=4,
             class_num=10, attn_dropout=0.0, proj_dropout=0.0, buffer_size=16, diffloss_d=3, diffloss_w=256,
             diffusion_batch_mul=4, num_sampling_steps="100")
BATCH, MASKED, LR, WEIGHT_DECAY, CLIP = 4, 48, 1e-3, 0.02, 3.0


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def uniform(name, n):
    """n values in [-1, 1): splitmix64 of seed + (i + 1) golden, i < n, the seed FNV-1a of the name."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        x = np.uint64(fnv1a(name)) + i * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 * 2.0 - 1.0


def weight_values(name, shape):
    u = uniform(name, int(np.prod(shape)))
    if len(shape) == 1:
        v = 1.0 + 0.1 * u if name.endswith(".weight") else 0.05 * u
    else:
        v = u * np.sqrt(3.0 / shape[-1])
    return v.astype(np.float32).reshape(shape)


def samples(flat):
    n = flat.size
    return flat[[i * n // 8 for i in range(8)]]


def paper_constructors(out):
    """The official mar_base / mar_large / mar_huge as main_mar.py trains them (KL-16 tokens: img_size 256,
    vae_stride 16, 16 channels, patch 1; buffer 64; the README's Diffusion Loss heads 6 x 1024, 8 x 1280, 12 x 1536):
    their state_dict's names and shapes (`paper_keys.json`, checked in: the test reads the presets' sizes against
    it), and mar_base's whole state_dict saved by torch.save (`mar_base.pth`, 0.8 GB, not checked in:
    `ddmlab import mar_base.pth --layout mar --preset mar-b --out DIR` checks it against the preset first)."""
    from models import mar
    heads = {"mar_base": (6, 1024), "mar_large": (8, 1280), "mar_huge": (12, 1536)}
    keys = {}
    for name, (d, w) in heads.items():
        model = getattr(mar, name)(img_size=256, vae_stride=16, patch_size=1, vae_embed_dim=16, buffer_size=64,
                                   class_num=1000, diffloss_d=d, diffloss_w=w)
        state = model.state_dict()
        keys[name] = {k: list(v.shape) for k, v in state.items()}
        if name == "mar_base":
            torch.save(state, os.path.join(out, "mar_base.pth"))
        del model, state
    with open(os.path.join(out, "paper_keys.json"), "w") as f:
        json.dump(keys, f, indent=0, sort_keys=True)
    print({k: sum(int(np.prod(s)) for s in v.values()) for k, v in keys.items()}, "parameters")


def main():
    official, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, official)
    torch.Tensor.cuda = lambda self, *a, **k: self  # the CPU shim
    from functools import partial
    from models.mar import MAR
    from util.misc import add_weight_decay

    if "--paper" in sys.argv:
        os.makedirs(out, exist_ok=True)
        return paper_constructors(out)

    torch.manual_seed(0)
    model = MAR(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **SIZES)
    state = {k: torch.from_numpy(weight_values(k, tuple(v.shape))) for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    model.eval()  # no label drop inside the encoder: the null class is an input here

    rng = np.random.default_rng(0)
    seq, c = model.seq_len, model.token_embed_dim
    tokens = (rng.standard_normal((BATCH, seq, c)) * 0.8).astype(np.float32)
    labels = np.array([3, 7, 10, 0], dtype=np.int64)
    orders = np.stack([rng.permutation(seq) for _ in range(BATCH)])
    mask = np.zeros((BATCH, seq), dtype=np.float32)
    for i in range(BATCH):
        mask[i, orders[i, :MASKED]] = 1.0
    repeat = SIZES["diffusion_batch_mul"]
    rows = [(i, j) for i in range(BATCH) for _ in range(repeat) for j in range(seq) if mask[i, j] > 0]
    n = len(rows)
    t = rng.integers(0, 1000, size=n).astype(np.int64)
    t[:4] = [0, 1, 999, 500]
    noise = rng.standard_normal((n, c)).astype(np.float32)

    x = torch.from_numpy(tokens)
    m = torch.from_numpy(mask)
    lab = torch.from_numpy(labels)
    null = lab == SIZES["class_num"]
    class_embedding = torch.where(null[:, None], model.fake_latent.expand(BATCH, -1),
                                  model.class_emb(lab.clamp(max=SIZES["class_num"] - 1)))
    encoder = model.forward_mae_encoder(x, m, class_embedding)
    z = model.forward_mae_decoder(encoder, m)
    idx_i = torch.tensor([r[0] for r in rows])
    idx_j = torch.tensor([r[1] for r in rows])
    z_rows, target = z[idx_i, idx_j], x[idx_i, idx_j]
    tt, eps = torch.from_numpy(t), torch.from_numpy(noise)
    diffusion = model.diffloss.train_diffusion
    x_t = diffusion.q_sample(target, tt, noise=eps)
    head_out = model.diffloss.net(x_t, tt, z_rows)
    terms = diffusion.training_losses(model.diffloss.net, target, tt, dict(c=z_rows), noise=eps)
    loss = terms["loss"].mean()
    assert torch.allclose(terms["loss"], terms["mse"] + terms["vb"])

    tensors = {"tokens": tokens, "labels": labels, "mask": mask, "t": t, "noise": noise,
               "encoder": encoder.detach().numpy(), "decoder": z.detach().numpy(),
               "head_out": head_out.detach().numpy(), "mse": terms["mse"].detach().numpy(),
               "vb": terms["vb"].detach().numpy(), "loss": loss.detach().numpy().reshape(1)}
    loss.backward()
    names = dict(model.named_parameters())
    for name, p in names.items():
        g = p.grad.detach().numpy().ravel()
        tensors["grad_norm." + name] = np.array([np.linalg.norm(g.astype(np.float64))], dtype=np.float32)
        tensors["grad." + name] = samples(g)
    optimizer = torch.optim.AdamW(add_weight_decay(model, WEIGHT_DECAY), lr=LR, betas=(0.9, 0.95))
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    for name, p in names.items():
        tensors["step." + name] = samples(p.detach().numpy().ravel())
    os.makedirs(out, exist_ok=True)
    meta = dict(SIZES, official_commit="fe470ac24afbee924668d8c5c83e9fec60af3a73", torch=torch.__version__,
                batch=BATCH, masked=MASKED, lr=LR, weight_decay=WEIGHT_DECAY, clip=CLIP)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(out, "fixture.safetensors"),
              metadata={"sizes": json.dumps(meta)})
    print(f"loss {loss.item():.6f} (mse {terms['mse'].mean().item():.6f}, vb {terms['vb'].mean().item():.6f}); "
          f"{len(tensors)} tensors written to {out}")


if __name__ == "__main__":
    main()
