"""The memory presets' benchmarks run on the tiny model: the counted peaks (bench/memory_presets.py) and the GPU
measurement (bench/gpu_speed.py --presets), which on CPU only shows the script runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_counted_peaks_order_the_presets_and_add_up(monkeypatch, capsys):
    bench = _load("memory_presets", monkeypatch)
    rows = bench.main(["--tiny", "--batches", "1", "2"])
    assert [batch for batch, _, _ in rows] == [1, 2]
    for _, peaks, activations in rows:
        peak = {preset: max(stages.values()) for preset, stages in peaks.items()}
        assert peak["full"] > peak["12gb"] > peak["8gb"] > 0
        assert peaks["full"]["decode"] - peaks["full"]["denoise"] == activations["decode"] - activations["denoise"]
    (_, _, one), (_, _, two) = rows
    assert two["decode"] > one["decode"] and two["decode_sliced"] == one["decode_sliced"]  # slicing: one face
    assert "| 12gb | 2 |" in capsys.readouterr().out


def test_gpu_speed_measures_each_preset(monkeypatch, tmp_path):
    gpu_speed = _load("gpu_speed", monkeypatch)
    out = tmp_path / "presets.json"
    argv = "--presets --tiny --device cpu --batches 1 2 --preset-steps 2 --repeats 1".split() + ["--json", str(out)]
    assert gpu_speed.main(argv) == 0
    rows = json.loads(out.read_text())["presets"]
    assert [(r["preset"], r["batch"]) for r in rows] == [(p, b) for p in ("full", "12gb", "8gb") for b in (1, 2)]
    assert all(r["seconds_per_face"] > 0 and r["peak_memory_gib"] is None for r in rows)
