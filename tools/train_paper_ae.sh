#!/usr/bin/env bash
# The README's first command: set up, then train the paper's autoencoder AE(256) (L1 loss, Adam
# 1e-3, batch 100, 100 epochs) on the real Fashion-MNIST, on the GPU if there is one, else the CPU.
# Extra arguments go to `fmnist train` (e.g. --epochs 5, --out runs/mine).
set -euo pipefail
cd "$(dirname "$0")/.."
FMNIST_BUILD_TARGETS="${FMNIST_BUILD_TARGETS:-fmnist}" tools/setup.sh  # the tests wait for tools/test.sh
exec "${FMNIST_BUILD_DIR:-build}/fmnist" train --model ae --latent 256 --device auto "$@"
