"""``python -m authface_core restore`` over a folder: good files restored, a corrupt one reported, resume."""

from __future__ import annotations

import json

import numpy as np

from authface_core.cli import main
from authface_core.io import load_rgb, save_image

from .conftest import FACE_SIZE


def test_folder_with_a_corrupt_file_restores_the_rest_and_exits_nonzero(tiny_checkpoint, small_face, tmp_path, capsys):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    save_image(inputs / "a.png", small_face)
    save_image(inputs / "nested" / "b.jpg", small_face[::-1])
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    argv = [
        "restore",
        str(inputs),
        "-o",
        str(outputs),
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--aligned",
        "--face-size",
        str(FACE_SIZE),
        "--steps",
        "3",
        "--fidelity",
        "0.4",
        "--seed",
        "9",
        "--no-identity-check",
    ]

    assert main(argv) == 1
    stderr = capsys.readouterr().err
    assert "broken.jpg" in stderr and "1 failed" in stderr and "2 restored" in stderr
    assert "not a restoration" in stderr  # the tiny model says what it is
    for name in ("a", "nested/b"):
        restored = load_rgb(outputs / f"{name}.png")
        assert restored.shape == (FACE_SIZE, FACE_SIZE, 3)
        record = json.loads((outputs / f"{name}.json").read_text())
        assert record["settings"]["num_inference_steps"] == 3 and record["settings"]["fidelity"] == 0.4
        assert record["settings"]["seed"] == 9 and record["smoke_test_model"] is True and "warning" in record
        assert record["faces"] == [{"index": 0, "box": None, "authenticity": None}]
    assert not (outputs / "broken.png").exists()

    first = (outputs / "a.png").stat().st_mtime_ns
    assert main(argv) == 1  # resume: the two done are skipped, the corrupt one fails again
    assert "0 restored, 2 already done, 1 failed" in capsys.readouterr().err
    assert (outputs / "a.png").stat().st_mtime_ns == first


def test_whole_photo_sidecar_lists_faces_and_skips(tiny_checkpoint, shared_faces, tmp_path):
    photo = shared_faces / "whole" / "diffbir_Harry_Potter.jpg"
    argv = [
        "restore",
        str(photo),
        "-o",
        str(tmp_path),
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--face-size",
        str(FACE_SIZE),
        "--steps",
        "2",
        "--select",
        "largest",
        "--upscale",
        "2",
        "--no-identity-check",
    ]
    assert main(argv) == 0
    record = json.loads((tmp_path / "diffbir_Harry_Potter.json").read_text())
    source = load_rgb(photo)
    assert load_rgb(tmp_path / "diffbir_Harry_Potter.png").shape == (2 * source.shape[0], 2 * source.shape[1], 3)
    assert len(record["faces"]) == 1 and len(record["skipped_faces"]) == 2
    assert set(record["faces"][0]["box"]) >= {"left", "top", "right", "bottom"}


def test_bad_flag_value_exits_2_naming_it(tiny_checkpoint, tmp_path, capsys):
    argv = ["restore", str(tmp_path), "-o", str(tmp_path), "--model", str(tiny_checkpoint), "--fidelity", "2"]
    assert main(argv) == 2
    assert "fidelity" in capsys.readouterr().err


def test_missing_model_exits_2_with_a_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert main(["restore", str(tmp_path), "-o", str(tmp_path), "--model", "nobody/nothing"]) == 2
    assert "--model" in capsys.readouterr().err


def test_fast_preset_with_explicit_steps():
    from authface_core.cli import build_parser
    from authface_core.cli.restore import config_from_args

    args = build_parser().parse_args(["restore", "x", "-o", "y", "--fast", "--steps", "24", "--seed", "-1"])
    config = config_from_args(args)
    assert (config.scheduler, config.num_inference_steps, config.seed) == ("dpmpp", 24, None)
    assert np.isclose(config.guidance_scale, 8.0)
