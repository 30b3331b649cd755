"""Folder evaluation, tables, plot and the ``evaluate`` subcommand on a small real benchmark set."""

from __future__ import annotations

import argparse
import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from authface_core.cli import evaluate as evaluate_cli
from authface_core.degradations import build_degraded_set
from authface_core.errors import InvalidImageError
from authface_core.io import list_images, load_rgb, save_image
from authface_core.metrics.evaluate import EvaluationConfig, evaluate_folders, pair_with_ground_truth
from authface_core.metrics.fidelity import psnr, ssim
from authface_core.metrics.report import render_markdown, render_plot, trailing_setting
from authface_core.metrics.specs import METRIC_SPECS

FACES = ("gpen_ffhq_00006.png", "ddnm_00234.png")


@pytest.fixture(scope="module")
def benchmark_set(shared_faces, tmp_path_factory):
    """A 2-face synthetic set at 256 px, plus two 'methods': the degraded inputs and a blurred GT."""
    root = tmp_path_factory.mktemp("bench")
    build_degraded_set([shared_faces / "hq_aligned" / n for n in FACES], root / "set", "gfpgan", seed=3, size=256)
    for path in list_images([root / "set" / "hq"]):
        hq = load_rgb(path)
        save_image(root / "blur_1" / path.name, (0.5 * hq + 0.5 * np.roll(hq, 1, axis=1)).astype(np.uint8))
        save_image(root / "blur_2" / path.name, (0.5 * hq + 0.5 * np.roll(hq, 2, axis=1)).astype(np.uint8))
    return root


def test_scores_match_the_metric_functions(benchmark_set):
    gt, lq = benchmark_set / "set" / "hq", benchmark_set / "set" / "lq"
    report = evaluate_folders([lq], EvaluationConfig(gt_dir=gt, identity=False, learned="none"), show_progress=False)
    [method] = report.methods
    expected_psnr = [psnr(load_rgb(lq / n), load_rgb(gt / n)) for n in FACES]
    expected_ssim = [ssim(load_rgb(lq / n), load_rgb(gt / n), channel="rgb") for n in FACES]
    assert method.summary["psnr_y"].mean == pytest.approx(np.mean(expected_psnr))
    assert method.summary["ssim_rgb"].mean == pytest.approx(np.mean(expected_ssim))
    assert method.summary["niqe"].count == 2
    assert report.metric_keys == ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "niqe")


def test_identity_metrics_and_side_by_side_table(benchmark_set):
    gt = benchmark_set / "set" / "hq"
    report = evaluate_folders(
        [benchmark_set / "set" / "lq", benchmark_set / "blur_1"],
        EvaluationConfig(gt_dir=gt, learned="none"),
        show_progress=False,
    )
    lq, blur = report.methods
    assert blur.summary["identity_similarity"].count == 2
    assert blur.summary["lmd"].mean < 3.0  # a one-pixel blur barely moves landmarks
    assert blur.summary["identity_similarity"].mean > lq.summary["identity_similarity"].mean
    markdown = render_markdown(report)
    assert "| lq | 2 |" in markdown and "| blur_1 | 2 |" in markdown
    assert METRIC_SPECS["lmd"].header in markdown


def test_missing_learned_metrics_are_skipped_with_a_note(benchmark_set):
    config = EvaluationConfig(gt_dir=benchmark_set / "set" / "hq", identity=False, learned="lpips,musiq")
    report = evaluate_folders([benchmark_set / "blur_1"], config, show_progress=False)
    summary = report.methods[0].summary
    assert summary["lpips"].mean is None and "pyiqa" in summary["lpips"].note
    markdown = render_markdown(report)
    [row] = [line for line in markdown.splitlines() if line.startswith("| blur_1 |")]
    assert row.count("| skipped ") == 2  # LPIPS and MUSIQ: a note, never a number
    assert "LPIPS: skipped: pyiqa" in markdown


def test_without_ground_truth_only_no_reference_metrics(benchmark_set):
    config = EvaluationConfig(identity=True, learned="lpips")
    report = evaluate_folders([benchmark_set / "set" / "lq"], config, show_progress=False)
    assert report.metric_keys == ("niqe",)
    assert "no ground truth" in render_markdown(report)


def test_unmatched_and_mis_sized_outputs_are_reported(benchmark_set, tmp_path):
    method = tmp_path / "method"
    shutil.copytree(benchmark_set / "set" / "lq", method)
    save_image(method / "stranger.png", np.zeros((256, 256, 3), np.uint8))
    with pytest.raises(InvalidImageError, match="stranger.png"):
        pair_with_ground_truth(method, benchmark_set / "set" / "hq")
    (method / "stranger.png").unlink()
    save_image(method / FACES[0], np.zeros((128, 128, 3), np.uint8))
    config = EvaluationConfig(gt_dir=benchmark_set / "set" / "hq", identity=False, learned="none")
    report = evaluate_folders([method], config, show_progress=False)
    assert len(report.methods[0].failures) == 1 and "128x128" in report.methods[0].failures[0]
    assert report.methods[0].summary["psnr_y"].count == 1


def test_plot_follows_the_setting_in_folder_names(benchmark_set):
    config = EvaluationConfig(gt_dir=benchmark_set / "set" / "hq", identity=False, learned="none")
    report = evaluate_folders(
        [benchmark_set / "set" / "lq", benchmark_set / "blur_1", benchmark_set / "blur_2"], config, show_progress=False
    )
    assert [trailing_setting(m.name) for m in report.methods] == [None, 1.0, 2.0]
    image = render_plot(report, "psnr_y", x_label="blur px")
    assert image.dtype == np.uint8 and image.ndim == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # lines and text were drawn
    with pytest.raises(ValueError, match="not measured"):
        render_plot(report, "lpips")


def test_evaluate_subcommand_writes_tables_and_plot(benchmark_set, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    out = tmp_path / "report"
    args = parser.parse_args(
        [
            str(benchmark_set / "blur_1"),
            str(benchmark_set / "blur_2"),
            "--gt",
            str(benchmark_set / "set" / "hq"),
            "-o",
            str(out),
            "--no-identity",
            "--learned",
            "none",
            "--x-label",
            "blur",
        ]
    )
    assert evaluate_cli.run(args) == 0
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [row["method"] for row in rows] == ["blur_1", "blur_2"]
    assert float(rows[0]["psnr_y"]) > float(rows[1]["psnr_y"])  # a wider blur loses more
    per_image = list(csv.DictReader(io.StringIO((out / "per_image.csv").read_text())))
    assert len(per_image) == 4
    assert Image.open(out / "psnr_y.png").size == (800, 500)
    assert "![PSNR (Y)](psnr_y.png)" in (out / "results.md").read_text()
    assert "blur_2" in capsys.readouterr().out


def test_evaluate_subcommand_refuses_an_unknown_plot_metric(benchmark_set, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    args = parser.parse_args([str(benchmark_set / "blur_1"), "-o", str(tmp_path), "--plot-metric", "psnr_y"])
    assert evaluate_cli.run(args) == 2
    assert "--plot-metric 'psnr_y' is not measured" in capsys.readouterr().err


def test_identity_to_reference_photos_column(shared_faces, tmp_path):
    from authface_core.faces import DLIB_IDENTITY, align_face, detect_faces, measure_face

    identity = shared_faces / "identity"
    crops = {}
    for person, photo in (("obama", "obama.jpg"), ("biden", "biden.jpg")):
        rgb = load_rgb(identity / person / photo)
        crops[person] = align_face(rgb, detect_faces(rgb)[0], 256).image
        save_image(tmp_path / "right" / f"{person}.png", crops[person])
    save_image(tmp_path / "swapped" / "obama.png", crops["biden"])
    save_image(tmp_path / "swapped" / "biden.png", crops["obama"])
    refs = tmp_path / "refs"  # a folder of photos for one person, a single photo for the other
    for photo in ("obama1.jpg", "obama2.jpg"):
        (refs / "obama").mkdir(parents=True, exist_ok=True)
        shutil.copy(identity / "obama" / photo, refs / "obama" / photo)
    shutil.copy(identity / "biden" / "biden2.jpg", refs / "biden.jpg")

    def embedding(path):
        rgb = load_rgb(path)
        return DLIB_IDENTITY.embed(rgb, detect_faces(rgb)[0])

    expected = np.mean(
        [
            np.mean(
                [
                    DLIB_IDENTITY.distance(measure_face(crops["obama"]).descriptor, embedding(p))
                    for p in (refs / "obama").iterdir()
                ]
            ),
            DLIB_IDENTITY.distance(measure_face(crops["biden"]).descriptor, embedding(refs / "biden.jpg")),
        ]
    )
    config = EvaluationConfig(references_dir=refs, niqe=False, learned="none")
    assert config.metric_keys == ("reference_distance",)
    right, swapped = evaluate_folders([tmp_path / "right", tmp_path / "swapped"], config, show_progress=False).methods
    assert right.summary["reference_distance"].count == 2
    assert right.summary["reference_distance"].mean == pytest.approx(expected)
    assert right.summary["reference_distance"].mean < 0.64 < swapped.summary["reference_distance"].mean
    with pytest.raises(ValueError, match="references_dir .* is not a folder"):
        EvaluationConfig(references_dir=tmp_path / "nowhere")
