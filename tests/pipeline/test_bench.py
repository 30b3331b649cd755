"""bench/gpu_speed.py runs end to end on CPU with the tiny model (the GPU figures come from a GPU host)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

GPU_SPEED = Path(__file__).resolve().parents[2] / "bench" / "gpu_speed.py"


def test_gpu_speed_tiny_cpu_run_writes_measurements(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_speed", GPU_SPEED)
    gpu_speed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_speed", gpu_speed)  # its dataclasses look their module up
    spec.loader.exec_module(gpu_speed)
    out = tmp_path / "speed.json"
    flags = "--tiny --device cpu --batches 1 2 --released-steps 3 --fast-steps 2 --repeats 1 --no-compile"
    argv = flags.split() + ["--json", str(out)]
    assert gpu_speed.main(argv) == 0
    record = json.loads(out.read_text())
    rows = record["measurements"]
    assert [(r["config"], r["batch"], r["steps"]) for r in rows] == [
        ("released", 1, 3),
        ("released", 2, 3),
        ("fast", 1, 2),
        ("fast@3", 1, 3),
        ("fast", 2, 2),
        ("fast@3", 2, 3),
    ]
    assert all(r["seconds_per_face"] > 0 and r["denoiser_tflops_per_s"] > 0 for r in rows)
    assert {r["scheduler"] for r in rows} == {"ddpm", "dpmpp"}
    assert record["denoiser_flops_per_face_pass"] > 1e6  # counted by torch's FLOP counter at 64x64
