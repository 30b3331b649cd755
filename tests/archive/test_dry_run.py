"""``restore --dry-run``: the plan (photos, faces found, FLOPs per face, GPU time), with nothing restored or written."""

from __future__ import annotations

import re

import numpy as np

from authface_core.archive.plan import ArchivePlan, describe_duration, sample_evenly
from authface_core.cli import main
from authface_core.faces import detect_faces
from authface_core.io import load_rgb, save_image

from .conftest import FACE_SIZE, TINY_FLAGS, astronaut_variants


def pipeline_denoiser_flops(pipe, steps: int) -> int:
    """The FLOPs the ControlNet and UNet spend in a real pipeline call of ``steps`` steps on one face, counted
    with attention on PyTorch's math path (the CPU's fused attention kernel is not counted by torch)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        face = np.zeros((1, FACE_SIZE, FACE_SIZE, 3), np.uint8)
        pipe(face, num_inference_steps=steps, guidance_scale=8.0, generator=torch.Generator().manual_seed(0))
    counts = counter.get_flop_counts()
    return sum(sum(counts[name].values()) for name in ("ControlNetModel", "UNet2DConditionModel"))


def test_the_plan_counts_photos_faces_and_flops_and_writes_nothing(
    tmp_path, astronaut, tiny_checkpoint, tiny_pipe, capsys
):
    folder, out = tmp_path / "scans", tmp_path / "out"
    photos = astronaut_variants(astronaut, 5)
    for index in range(2):
        save_image(folder / f"{index}.png", photos[index])
    flags = [str(folder), "-o", str(out), "--model", str(tiny_checkpoint), *TINY_FLAGS]
    assert main(["restore", *flags]) == 0
    for index in range(2, 5):
        save_image(folder / f"{index}.png", photos[index])
    before = sorted((path, path.stat().st_mtime_ns) for path in out.rglob("*"))
    capsys.readouterr()

    assert main(["restore", *flags, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert sorted((path, path.stat().st_mtime_ns) for path in out.rglob("*")) == before
    faces = sum(len(detect_faces(load_rgb(folder / f"{index}.png"))) for index in range(2, 5))
    assert "photos: 5 in all, 2 already done, 3 left" in printed
    assert f"faces found so far: {faces} in 3 photo(s) left (0 without a face, 0 unreadable)" in printed
    counted = float(re.search(r"denoiser per face: ([\d.e+-]+) TFLOP", printed).group(1)) * 1e12
    assert abs(counted / pipeline_denoiser_flops(tiny_pipe, steps=2) - 1) < 1e-3
    assert "H100" in printed and "per process" in printed

    assert main(["restore", *flags, "--dry-run", "--dry-run-sample", "1"]) == 0
    assert "in a sample of 1, extrapolated" in capsys.readouterr().out
    assert not (tmp_path / "never").exists()
    assert main(["restore", str(folder), "-o", str(tmp_path / "never"), "--dry-run", *flags[3:]]) == 0
    assert not (tmp_path / "never").exists()  # a dry run creates no output folder


def test_plan_arithmetic():
    plan = ArchivePlan(
        photos=1000, done=200, looked_at=100, faces=250, without_face=5, unreadable=1,
        flops_per_face=233e12, flops_counted_on="test", processes=8,
    )  # fmt: skip
    assert plan.left == 800 and plan.estimated_faces == 2000
    assert abs(plan.gpu_seconds(790) - 2000 * 233 / 790) < 1e-9
    assert sample_evenly(list(range(10)), 3) == [0, 3, 6] and sample_evenly([1, 2], 0) == [1, 2]
    assert [describe_duration(s) for s in (42, 210, 7560, 3 * 86400)] == ["42 s", "3.5 min", "2.1 h", "3.0 days"]
