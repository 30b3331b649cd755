"""``python -m authface_core evaluate``: flags from its settings; a file it cannot score is named, the rest scored."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest

from authface_core.cli import main, parse_args
from authface_core.cli.evaluate import ReportSettings
from authface_core.io import save_image
from authface_core.metrics.config import EvaluationConfig
from authface_core.settings import settings_from_namespace


def test_a_file_that_cannot_be_scored_is_named_and_the_rest_scored(astronaut, tmp_path, capsys):
    """A whole photo among aligned faces used to stop evaluate at once with 'expected a square aligned face'."""
    face = cv2.resize(astronaut[20:240, 140:360], (256, 256), interpolation=cv2.INTER_AREA)
    wide = cv2.resize(astronaut, (320, 180), interpolation=cv2.INTER_AREA)
    for folder, shift in (("gt", 0), ("method_1", 1)):
        save_image(tmp_path / folder / "face.png", np.roll(face, shift, axis=1))
        save_image(tmp_path / folder / "whole_photo.png", np.roll(wide, shift, axis=1))
    out = tmp_path / "report"
    argv = ["evaluate", str(tmp_path / "method_1"), "--gt", str(tmp_path / "gt"), "-o", str(out)]
    assert main([*argv, "--learned", "none", "--no-niqe"]) == 1
    assert "whole_photo.png: expected a square aligned face, got 320x180" in capsys.readouterr().err
    [row] = csv.DictReader(io.StringIO((out / "results.csv").read_text()))
    assert row["method"] == "method_1" and float(row["psnr_y"]) > 20  # the square face was scored


def test_evaluate_flags_come_from_its_settings():
    args = parse_args(["evaluate", "a", "-o", "b", "--no-identity", "--learned", "lpips,musiq", "--x-label", "steps"])
    config, report = settings_from_namespace(args, EvaluationConfig, ReportSettings)
    assert config == EvaluationConfig(identity=False, learned="lpips,musiq") and report.x_label == "steps"
    assert config.learned_metrics == ("lpips", "musiq")
    assert EvaluationConfig(learned="none").learned_metrics == ()
    with pytest.raises(ValueError, match="learned has unknown metric"):
        EvaluationConfig(learned="lpips,psnr")


def test_without_ground_truth_or_niqe_there_is_no_plot_rather_than_an_error(astronaut, tmp_path, capsys):
    save_image(tmp_path / "method" / "face.png", astronaut)
    argv = ["evaluate", str(tmp_path / "method"), "-o", str(tmp_path / "out"), "--no-niqe", "--learned", "none"]
    assert main(argv) == 0
    assert not list((tmp_path / "out").glob("*.png"))
