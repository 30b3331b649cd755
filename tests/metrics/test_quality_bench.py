"""bench/quality.py end to end with the tiny model: degrade -> restore -> evaluate -> table and plot."""

from __future__ import annotations

import csv
import importlib.util
import io

from PIL import Image

from tests.conftest import REPO_ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO_ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_loop_with_the_tiny_model(shared_faces, tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "quality"
    argv = [
        "--hq",
        str(shared_faces / "hq_aligned"),
        "--count",
        "2",
        "--size",
        "64",
        "--model",
        "tiny",
        "--steps",
        "2",
        "--values",
        "0,1",
        "--no-identity",
        "-o",
        str(out),
    ]
    assert bench.main(argv) == 0
    manifest = (out / "set" / "manifest.json").read_text()
    assert '"preset": "gfpgan"' in manifest
    rows = list(csv.DictReader(io.StringIO((out / "report" / "results.csv").read_text())))
    assert [row["method"] for row in rows] == ["lq", "fidelity_0", "fidelity_1"]
    assert all(float(row["psnr_y"]) > 5 for row in rows)
    assert Image.open(out / "report" / "psnr_y.png").size == (800, 500)
    assert "random weights" in capsys.readouterr().out
