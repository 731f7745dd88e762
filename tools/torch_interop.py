#!/usr/bin/python3
"""Checks that fmnist's safetensors checkpoints and PyTorch's state_dicts are interchangeable.
  eval   --weights F.safetensors --data-dir D [--indices-file F] [--json]: strict load_state_dict, then
         MAE (autoencoder) or accuracy and loss (classifier) on t10k in float32 batches of 100.
  export --model ae|classifier --latent N --seed S --out F.safetensors: a PyTorch-initialised model's
         state_dict with no metadata."""

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"


def find_idx(data_dir, stem):
    for name in (f"{stem}.gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{data_dir}: no {stem}(.gz)")


def read_indices(path, count):
    """Indices from a file: a JSON list, or integers separated by whitespace or commas."""
    with open(path) as f:
        text = f.read().strip()
    values = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
    indices = np.array([int(v) for v in values], dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= count):
        raise SystemExit(f"{path}: indices must be in [0, {count})")
    return indices


def evaluate(args):
    state_dict, metadata = torch_model.load_safetensors(args.weights)
    model, config = torch_model.model_from_state_dict(state_dict, metadata)
    model.load_state_dict(state_dict, strict=True)  # our files must load unchanged
    model.eval()
    images = torch_model.read_idx(find_idx(args.data_dir, "t10k-images-idx3-ubyte"))
    labels = torch_model.read_idx(find_idx(args.data_dir, "t10k-labels-idx1-ubyte"))
    indices = read_indices(args.indices_file, len(images)) if args.indices_file else np.arange(len(images))
    is_ae = isinstance(model, torch_model.Autoencoder)
    latent = int(state_dict["encoder.7.weight"].shape[0])
    result = {"model": f"{'AE' if is_ae else 'C'}({latent})", "latent": latent,
              "images": int(indices.size), "weights": args.weights}
    abs_sum = sq_sum = loss_sum = 0.0
    correct = 0
    with torch.no_grad():
        for start in range(0, indices.size, 100):
            batch = indices[start:start + 100]
            x = torch.from_numpy(images[batch].astype(np.float32) / np.float32(255)).unsqueeze(1)
            out = model(x)
            if is_ae:
                abs_sum += float((out - x).abs().double().sum())
                sq_sum += float(((out - x) ** 2).double().sum())
            else:
                y = torch.from_numpy(labels[batch].astype(np.int64))
                loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
                correct += int((out.argmax(dim=1) == y).sum())
    n = max(int(indices.size), 1)
    if is_ae:
        result.update(mae=abs_sum / (n * 784), mse=sq_sum / (n * 784))
    else:
        result.update(accuracy=correct / n, loss=loss_sum / n, correct=correct,
                      head=config.get("head", "sigmoid"))
    if args.json:
        print(json.dumps(result))
    else:
        print(", ".join(f"{k} {v}" for k, v in result.items()))


def export(args):
    torch.manual_seed(args.seed)
    if args.model == "ae":
        model = torch_model.Autoencoder(args.latent)
    else:
        model = torch_model.Classifier(args.latent, args.head)
    torch_model.save_safetensors(args.out, model.state_dict(), metadata=None)
    print(json.dumps({"out": args.out, "tensors": list(model.state_dict())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    e = commands.add_parser("eval", help="evaluate a safetensors checkpoint in PyTorch")
    e.add_argument("--weights", required=True)
    e.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    e.add_argument("--indices-file", help="t10k indices to evaluate (default: all 10,000)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(run=evaluate)
    x = commands.add_parser("export", help="write a PyTorch-initialised model as safetensors")
    x.add_argument("--model", choices=["ae", "classifier"], required=True)
    x.add_argument("--latent", type=int, required=True)
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--head", choices=["sigmoid", "logits"], default="sigmoid")
    x.add_argument("--out", required=True)
    x.set_defaults(run=export)
    args = parser.parse_args()
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    args.run(args)


if __name__ == "__main__":
    main()
