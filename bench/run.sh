#!/usr/bin/env bash
# `npm run bench`: phoneside inference speed (ONNX Runtime) beside PyTorch on the CPU.
# PyTorch comes from Debian (python3-torch, python3-torchvision), installed here when missing
# and we are root with apt-get; otherwise phoneside is benchmarked alone. Options go to
# bench/inference.ts (e.g. `npm run bench -- --images 32 --threads 2`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PHONESIDE_BENCH_PYTHON:-/usr/bin/python3}

if ! "$PY" -c 'import torch, torchvision, PIL, numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing python3-torch python3-torchvision (Debian) for the PyTorch comparison..." >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq python3-torch python3-torchvision python3-pil python3-numpy; } >&2; then
      echo "bench: could not install PyTorch; benchmarking phoneside alone" >&2
    fi
  else
    echo "bench: no PyTorch for $PY (installing it needs root and apt-get); benchmarking phoneside alone" >&2
  fi
fi
if ! "$PY" -c 'import torch, torchvision, PIL, numpy' 2>/dev/null; then PY=''; fi

exec node --import tsx bench/inference.ts --python "$PY" "$@"
