#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into tests/fuzz/seeds/<target>/ (committed; rerun to refresh).

Seeds are small valid inputs plus a few typical near-misses, so each fuzzer starts past the first
checks. Deterministic: the same files on every run. Usage: tests/fuzz/make_seeds.py [DATA_DIR]
(DATA_DIR, default /usr/share/datasets/fashion-mnist, gives a few real images when it is there).
"""
import base64
import gzip
import io
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def idx_images(count, rows, cols, pixels=None):
    if pixels is None:
        pixels = bytes((i * 37 + 11) % 256 for i in range(count * rows * cols))
    return struct.pack(">BBBBIII", 0, 0, 8, 3, count, rows, cols) + pixels


def idx_labels(labels):
    return struct.pack(">BBBBI", 0, 0, 8, 1, len(labels)) + bytes(labels)


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, data bytes)."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def content_crc32(tensors, metadata):
    """host/safetensors.h's content_crc32: the checksum fmnist stores as "fmnist.crc32"."""
    out = bytearray()

    def run(b):
        out.extend(struct.pack("<Q", len(b)) + b)

    for key in sorted(k.encode() for k in metadata):
        if key != b"fmnist.crc32":
            run(key)
            run(metadata[key.decode()].encode())
    for name, dtype, shape, raw in sorted(tensors, key=lambda t: t[0].encode()):
        run(name.encode())
        run(dtype.encode())
        out.extend(struct.pack("<Q", len(shape)))
        for d in shape:
            out.extend(struct.pack("<Q", d))
        run(raw)
    return "%08x" % (zlib.crc32(bytes(out)) & 0xFFFFFFFF)


def checksummed(tensors, metadata):
    """A safetensors file as fmnist writes it: with its "fmnist.crc32"."""
    return safetensors(tensors, dict(metadata, **{"fmnist.crc32": content_crc32(tensors, metadata)}))


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def write(target, name, data):
    folder = os.path.join(SEEDS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def real_images(data_dir, count):
    path = os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        return None
    with gzip.open(path, "rb") as f:
        f.read(16)
        return f.read(count * 28 * 28)


def idx_seeds(data_dir):
    small = idx_images(3, 4, 5)
    labels = idx_labels([0, 9, 3, 3, 7, 1, 2, 5, 8, 4])
    write("idx", "images_raw", small)
    write("idx", "images_gzip", gz(small))
    write("idx", "labels_raw", labels)
    write("idx", "labels_gzip", gz(labels))
    write("idx", "labels_two_gzip_members", gz(labels[:6]) + gz(labels[6:]))
    write("idx", "labels_gzip_then_garbage", gz(labels) + b"garbage")
    write("idx", "labels_trailing_bytes", labels + b"\x00\x01")
    write("idx", "images_truncated", small[:-7])
    write("idx", "images_gzip_truncated", gz(small)[:-9])
    # over 512 KiB once inflated: the reader's large-read paths
    write("idx", "images_zeros_gzip_large", gz(idx_images(700, 28, 28, bytes(700 * 28 * 28))))
    pixels = real_images(data_dir, 4)
    if pixels:
        write("idx", "images_fashion_mnist_4_gzip", gz(idx_images(4, 28, 28, pixels)))


def safetensors_seeds():
    write("safetensors", "one_f32", safetensors([("w", "F32", [2, 3], f32(range(6)))]))
    write("safetensors", "metadata_and_dtypes", safetensors(
        [("a", "U8", [4], b"\x01\x02\x03\x04"), ("b", "I64", [1], struct.pack("<q", -5)),
         ("c", "F16", [2], b"\x00\x3c\x00\x40"), ("d", "BF16", [], b"\x80\x3f")],
        metadata={"format": "pt", "note": "seed"}))
    write("safetensors", "empty_header", safetensors([]))
    write("safetensors", "zero_sized_tensor", safetensors([("z", "F32", [0, 5], b"")]))
    write("safetensors", "unpadded", safetensors([("w", "F64", [1], struct.pack("<d", 1.5))], pad=False))
    # a whole classifier C(1) checkpoint (models/network.cpp's names and shapes), so the fuzzer's
    # infer_model_config and load_weights calls see valid weights
    shapes = [("encoder.0.weight", [16, 1, 3, 3]), ("encoder.0.bias", [16]),
              ("encoder.3.weight", [32, 16, 3, 3]), ("encoder.3.bias", [32]),
              ("encoder.7.weight", [1, 800]), ("encoder.7.bias", [1]),
              ("clasiffier.0.weight", [10, 1]), ("clasiffier.0.bias", [10])]
    tensors = []
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        tensors.append((name, "F32", shape, bytes(4 * n)))
    config = {"kind": "classifier", "latent": 1, "dropout": 0.0, "ae_loss": "mae", "head": "sigmoid",
              "freeze_encoder": False}
    metadata = {"format": "pt", "fmnist.config": json.dumps(config)}
    write("safetensors", "c1_weights", safetensors(tensors, metadata))
    write("safetensors", "c1_weights_checksummed", checksummed(tensors, metadata))
    write("safetensors", "checksum_mismatch", checksummed([("w", "F32", [2], f32([1, 2]))], {})[:-1] + b"\x01")


def cli_seeds():
    # one argument per line (the harness splits on newlines and NULs)
    seeds = {
        "train": "train\n--model\nclassifier\n--latent\n16\n--epochs\n2\n--device\ncpu\n--out\n/tmp/x\n",
        "train_ae": "train\n--model=ae\n--loss=mse\n--dropout\n0.2\n--seed\n7\n--batch-size\n50\n--tf32\n",
        "train_resume": "train\n--resume\nruns/ae16\n--max-steps-per-epoch\n3\n--drop-last\n",
        "train_init_from": "train\n--model\nclassifier\n--init-from\nae.safetensors\n--fine-tune\n--head\nlogits\n",
        "eval": "eval\nrun/best.safetensors\n--device\ncpu\n",
        "info": "info\n--data-dir\n/nowhere\n",
        "bench": "bench\n--device\ncpu\n",
        "reproduce": "reproduce\n--epochs\n2\n--out\nreport\n",
        "help": "--help\n",
        "version": "--version\n",
        "train_help": "train\n--help\n",
        "bad_range": "train\n--latent\n0\n",
        "unknown": "frobnicate\n",
    }
    for name, text in seeds.items():
        write("cli", name, text)


def config_seeds():
    write("config", "full", json.dumps({"kind": "classifier", "latent": 64, "dropout": 0.2, "ae_loss": "mse",
                                        "head": "logits", "freeze_encoder": True}))
    write("config", "empty", "{}")
    write("config", "kind_only", '{"kind":"autoencoder"}')
    write("config", "bad_value", '{"latent":"many"}')
    write("config", "not_object", "[1,2,3]")
    write("config", "nested", '{"dropout":1e308,"latent":-1}')
    write("config", "unicode", '{"kind":"\\u00e9"}')
    # a run's config.json (read_run_config) and a training state's "fmnist.train" (load_run_state)
    model = {"kind": "autoencoder", "latent": 16, "dropout": 0.0, "ae_loss": "mae", "head": "sigmoid",
             "freeze_encoder": False}
    write("config", "run_config", json.dumps({
        "model": model, "description": "AE(16)", "epochs": 2, "batch": 100,
        "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, "seed": 1,
        "validation_count": 9900, "drop_last": False, "max_steps_per_epoch": 0, "init_encoder_from": "",
        "init_redraws": 10, "lr_schedule": "warmup_cosine", "lr_warmup_fraction": 0.05,
        "lr_final_fraction": 0.01, "augment": False, "augment_max_shift": 2, "augment_flip": False,
        "checkpoint_every": 10, "keep_checkpoints": 3, "guard_every": 1}))
    counters = {"epoch": 2, "step": 1200, "seed": 1, "step_in_epoch": 0, "batch": 100, "steps_per_epoch": 600,
                "best_epoch": 2, "best_metric": 0.05, "epoch_loss_sum": 0, "epoch_images": 0, "epoch_seconds": 0}
    write("config", "train_state_epoch_end", json.dumps(dict(counters, metrics={
        "epoch": 2, "steps": 600, "train_loss": 0.1, "val_loss": 0.09, "val_accuracy": None, "seconds": 3.5,
        "images_per_second": 17000.0})))
    write("config", "train_state_mid_epoch", json.dumps(dict(counters, step_in_epoch=17, step=1217,
                                                             epoch_loss_sum=1.7, epoch_images=1700,
                                                             epoch_seconds=0.2)))
    # Numbers out of their field's range: get<int>() of 1e300 was undefined behaviour (CI's fuzzer).
    write("config", "run_config_out_of_range", '{"model":{"kind":"autoencoder","latent":16},"epochs":1e300}')
    write("config", "train_state_out_of_range", json.dumps(dict(counters, metrics={
        "epoch": 2, "steps": 1e300, "train_loss": 0.1, "val_loss": 0.09, "val_accuracy": None, "seconds": 3.5,
        "images_per_second": 17000.0})))


def report_seeds():
    """results.json, a NUL, figures.json: a one-epoch reproduction of AE(64) and C(64), as fmnist
    reproduce writes them (results_json and figures_json), shrunk to two test images."""
    confusion = [0] * 100
    for label in range(10):
        confusion[label * 10 + label] = 1
    ae = {"backend": "cpu", "best": {"epoch": 1, "val_loss": 0.29}, "best_epoch": 1,
          "best_weights": {"t10k": {"images": 10000, "mae": 0.29}, "test": {"images": 100, "mae": 0.3}},
          "epochs": 1, "final": {"train_loss": 0.26, "val_loss": 0.29},
          "final_weights": {"t10k": {"images": 10000, "mae": 0.29}, "test": {"images": 100, "mae": 0.3}},
          "history": [{"epoch": 1, "images_per_second": 16000.5, "seconds": 0.25, "steps": 1, "train_loss": 0.26,
                       "val_loss": 0.29}],
          "kind": "autoencoder", "loss": "MAE", "name": "ae64",
          "paper": {"note": "", "t10k_accuracy": None, "t10k_mae": 0.063, "train_loss": 0.0621, "val_accuracy": None,
                    "val_accuracy_best": None, "val_loss": 0.063},
          "recipe": "faithful", "status": "ok", "title": "AE(64)", "wall_seconds": 0.5}
    split = {"accuracy": 0.1, "confusion": confusion, "images": 10, "loss": 2.3}
    c = {"backend": "cpu", "best": {"epoch": 1, "val_accuracy": 0.14, "val_loss": 2.3}, "best_epoch": 1,
         "best_weights": {"t10k": split, "test": split}, "epochs": 1,
         "final": {"train_loss": 2.3, "val_accuracy": 0.14, "val_loss": 2.3},
         "final_weights": {"t10k": split, "test": split},
         "history": [{"epoch": 1, "images_per_second": 10000.0, "seconds": 0.4, "steps": 1, "train_loss": 2.3,
                      "val_accuracy": 0.14, "val_loss": 2.3}],
         "kind": "classifier", "loss": "cross-entropy", "name": "c64",
         "paper": {"note": "", "t10k_accuracy": 0.8982, "t10k_mae": None, "train_loss": 1.4923, "val_accuracy": 0.8946,
                   "val_accuracy_best": 0.9058, "val_loss": 1.5347},
         "recipe": "faithful", "status": "ok", "title": "C(64)", "wall_seconds": 0.6}
    results = {"runs": [ae, c], "runs_wall_seconds": 1.1,
               "scale": {"backend": "cpu", "epochs": 1, "full_epochs": False, "total_wall_seconds": 1.2},
               "targets": [{"description": "larger n reconstructs better", "detail": "n/a: ae128 not in this reproduction",
                            "id": "order-latent", "status": "n/a"}],
               "workers": 1}
    image = base64.b64encode(bytes((i * 7) % 256 for i in range(784))).decode()
    figures = {"format": "fmnist-figures/1", "pixels": "base64 of the 784 grey levels",
               "runs": {"ae64": {"reconstructions": [image], "snapshots": [{"epoch": 1, "pixels": image}]},
                        "c64": {"test_predictions": [2, 9]}},
               "test_indices": [5, 7], "test_labels": [2, 3]}
    results_text = json.dumps(results, sort_keys=True)
    write("report", "results_and_figures", results_text + "\0" + json.dumps(figures, sort_keys=True))
    write("report", "results_only", results_text)
    write("report", "other_run", results_text.replace('"c64"', '"c256"') + "\0" + json.dumps(figures))
    write("report", "not_results", '{"runs": [], "scale": {}}')


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    idx_seeds(data_dir)
    safetensors_seeds()
    cli_seeds()
    report_seeds()
    config_seeds()


if __name__ == "__main__":
    main()
