"""bench/train_step.py: SDXL-size configs are the published ones; the harness runs on the tiny model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_step.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_train_step", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sdxl_configs_build_the_published_parameter_counts():
    """Built on the meta device (no memory): SDXL's UNet has 2,567,463,684 parameters and its VAE 83,653,863."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel

    bench = _bench_module()
    with init_empty_weights():
        unet = UNet2DConditionModel(**bench.SDXL_UNET_CONFIG)
        vae = AutoencoderKL(**bench.SDXL_VAE_CONFIG)
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863


def test_tiny_cpu_run_writes_the_table(tmp_path):
    bench = _bench_module()
    out = tmp_path / "train_step"
    rows = bench.main(
        bench.parse_args(
            [
                "--tiny",
                "--device",
                "cpu",
                "--batch_sizes",
                "1,2",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--mixed_precision",
                "fp32",
                "--out",
                str(out),
            ]
        )
    )
    assert [(r["batch_size"], r["gradient_checkpointing"]) for r in rows] == [
        (1, False),
        (2, False),
        (1, True),
        (2, True),
    ]
    assert all(r["seconds_per_step"] > 0 and r["peak_rss_gib"] > 0 for r in rows)
    assert json.loads(out.with_suffix(".json").read_text())["rows"] == rows
    assert "| 2 | on |" in out.with_suffix(".md").read_text()
