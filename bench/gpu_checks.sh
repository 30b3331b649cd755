#!/usr/bin/env bash
# The GPU figures owed by issues 3 (bench/gpu_speed.py), 6 (bench/train_step.py) and 14 (the memory
# presets, bench/gpu_speed.py --presets), as prepared runs for a lent H100/H200, whose image has
# torch and transformers but no diffusers and no network.
#
#   bash bench/gpu_checks.sh fetch     # here, with PyPI: wheels into .whl/ (git-ignored, ~30 MB)
#   bash bench/gpu_checks.sh run       # on the GPU machine, carrying .whl; results in $OUT (or bench/out)
#   bash bench/gpu_checks.sh presets   # likewise: peak memory and s/face of the full, 12gb and 8gb presets
#
# `run` takes about 8 minutes on an H100 and `presets` about 4 (one command each, under the
# 10-minute limit): each benchmark has its own time limit, so one that overruns still leaves the
# others' figures.
set -uo pipefail
cd "$(dirname "$0")/.."

# Versions pinned in requirements.txt, for the device's Python 3.12, plus what they need that the
# device image lacks (checked against the device's package list).
WHEELS=(diffusers==0.42.1 transformers==5.24.0 huggingface_hub==2.4.0 tokenizers==0.23.3 safetensors==0.8.0 hf-xet==1.8.0
        httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 importlib_metadata==10.2.0 zipp==4.1.2
        accelerate==1.15.0 psutil==7.2.2)  # accelerate (and its psutil): diffusers' CPU offload for the presets

case "${1:-}" in
  fetch)
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    ;;
  run|presets)
    out="${OUT:-bench/out}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    if [ "$1" = presets ]; then
      timeout 280 python3 bench/gpu_speed.py --presets --batches 1 4 --preset-steps 10 --repeats 1 \
        --json "$out/presets.json" 2>&1 | tee "$out/presets.log"
    else
      timeout 330 python3 bench/gpu_speed.py --json "$out/gpu_speed.json" 2>&1 | tee "$out/gpu_speed.log"
      timeout 210 python3 bench/train_step.py --batch_sizes 1,2,4 --out "$out/train_step" 2>&1 | tee "$out/train_step.log"
    fi
    ;;
  *)
    echo "usage: bash bench/gpu_checks.sh fetch|run|presets" >&2
    exit 2
    ;;
esac
