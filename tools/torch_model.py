"""The paper's networks in PyTorch (state_dict keys exactly those of its notebook), a minimal
safetensors reader/writer in pure Python (no `safetensors` package needed), and an IDX reader.
Run with Debian's /usr/bin/python3, which has python3-torch (tools/setup.sh installs it)."""

import gzip
import json
import os
import struct

import numpy as np
import torch
from torch import nn

LATENT_INPUT = 800  # 32 x 5 x 5 after the second pooling


def _relu(dropout):
    """ReLU, followed by Dropout(p) inside the same Sequential slot so the notebook's module
    indices (and so the state_dict keys) do not move when dropout is on."""
    if dropout > 0:
        return nn.Sequential(nn.ReLU(), nn.Dropout(dropout))
    return nn.ReLU()


def make_encoder(n, dropout=0.0):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), _relu(dropout), nn.MaxPool2d(2, 2),        # encoder.0
        nn.Conv2d(16, 32, 3), _relu(dropout), nn.MaxPool2d(2, 2),       # encoder.3
        nn.Flatten(), nn.Linear(LATENT_INPUT, n), _relu(dropout))       # encoder.7


class Autoencoder(nn.Module):
    """AE(n): encoder.{0,3,7}, decoder.{0,3,5}; L1 loss in the paper."""

    def __init__(self, n, dropout=0.0):
        super().__init__()
        self.encoder = make_encoder(n, dropout)
        self.decoder = nn.Sequential(
            nn.Linear(n, LATENT_INPUT), _relu(dropout), nn.Unflatten(1, (32, 5, 5)),   # decoder.0
            nn.ConvTranspose2d(32, 16, 4, stride=2, output_padding=1), _relu(dropout),  # decoder.3
            nn.ConvTranspose2d(16, 1, 3, stride=2, output_padding=1), nn.ReLU())        # decoder.5

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    """C(n): encoder.{0,3,7} then clasiffier.0 (the notebook's spelling). head="sigmoid" is the
    paper's (CrossEntropyLoss applied to sigmoid outputs); head="logits" drops the Sigmoid."""

    def __init__(self, n, head="sigmoid", dropout=0.0):
        super().__init__()
        if head not in ("sigmoid", "logits"):
            raise ValueError(f"head must be 'sigmoid' or 'logits', not {head!r}")
        self.encoder = make_encoder(n, dropout)
        layers = [nn.Linear(n, 10)] + ([nn.Sigmoid()] if head == "sigmoid" else [])
        self.clasiffier = nn.Sequential(*layers)

    def forward(self, x):
        return self.clasiffier(self.encoder(x))


def model_from_state_dict(state_dict, metadata=None):
    """The model whose keys these are (AE if decoder.*, classifier if clasiffier.*), latent from
    encoder.7.weight; head and dropout from metadata "fmnist.config" when present."""
    names = list(state_dict)
    latent = state_dict["encoder.7.weight"].shape[0]
    config = json.loads((metadata or {}).get("fmnist.config", "{}"))
    dropout = float(config.get("dropout", 0.0))
    if any(k.startswith("decoder.") for k in names):
        return Autoencoder(latent, dropout), config
    if any(k.startswith("clasiffier.") for k in names):
        return Classifier(latent, config.get("head", "sigmoid"), dropout), config
    raise ValueError("neither decoder.* nor clasiffier.* tensors: not one of the paper's models")


# ---- safetensors ---------------------------------------------------------------------------------
_DTYPES = {  # safetensors dtype -> (numpy dtype, torch dtype)
    "F64": ("<f8", torch.float64), "F32": ("<f4", torch.float32), "F16": ("<f2", torch.float16),
    "BF16": ("<i2", torch.bfloat16), "I64": ("<i8", torch.int64), "I32": ("<i4", torch.int32),
    "I16": ("<i2", torch.int16), "I8": ("i1", torch.int8), "U8": ("u1", torch.uint8),
    "BOOL": ("?", torch.bool),
}
_NAMES = {torch_dtype: name for name, (_, torch_dtype) in _DTYPES.items()}


def load_safetensors(path):
    """(dict name -> tensor in file order of offsets, metadata dict). Checks the format's rules."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    data = blob[8 + n:]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    tensors, covered = {}, 0
    for name, info in entries:
        begin, end = info["data_offsets"]
        if begin != covered or end > len(data):
            raise ValueError(f"{path}: tensor {name!r}: offsets not contiguous or out of range")
        np_dtype, torch_dtype = _DTYPES[info["dtype"]]
        array = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(info["shape"]).copy()
        tensor = torch.from_numpy(array)
        tensors[name] = tensor.view(torch.bfloat16) if torch_dtype == torch.bfloat16 else tensor
        covered = end
    if covered != len(data):
        raise ValueError(f"{path}: data section not fully covered by tensors")
    return tensors, metadata


def save_safetensors(path, state_dict, metadata=None):
    """Writes tensors in dict order (no "__metadata__" when metadata is None), atomically."""
    header, chunks, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


# ---- IDX -----------------------------------------------------------------------------------------
def read_idx(path):
    """An IDX file (gzip-compressed or raw) of unsigned bytes as a numpy uint8 array."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = blob[3]
    dims = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    count = int(np.prod(dims)) if dims else 1
    body = blob[4 + 4 * ndim:]
    if len(body) != count:
        raise ValueError(f"{path}: {len(body)} data bytes, expected {count} for shape {dims}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()
