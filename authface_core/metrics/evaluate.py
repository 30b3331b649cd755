"""Evaluate folders of restored faces against ground truth (when there is one): the tables' numbers.

A *method folder* holds aligned face crops, one per input (any size, square). With a ground-truth
folder, each output is matched to the ground-truth file of the same relative name (suffix
ignored) and must have its size. Without one (real-world LQ sets), only no-reference metrics apply.
Images are (H, W, 3) RGB uint8 (``authface_core.io``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from ..batch import run_batch
from ..errors import InvalidImageError
from ..io import list_images, load_rgb
from ..niqe import NIQE_MIN_SIDE, niqe_or_none
from .config import IDENTITY_METRICS, EvaluationConfig
from .fidelity import psnr, ssim
from .learned import LearnedMetrics, load_learned_metrics


@dataclass(frozen=True)
class MetricSummary:
    """One table cell: the mean over the images where the metric could be measured, or a skip note."""

    mean: float | None
    count: int
    total: int
    note: str = ""


@dataclass
class MethodResult:
    """One method folder's scores: per image (None = not measurable there) and summarised."""

    name: str
    folder: Path
    per_image: list[tuple[str, dict[str, float | None]]] = field(default_factory=list)
    summary: dict[str, MetricSummary] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass
class EvaluationReport:
    """Every method evaluated with one config, ready for :mod:`authface_core.metrics.report`."""

    methods: list[MethodResult]
    metric_keys: tuple[str, ...]
    notes: dict[str, str]  # metric key -> why it was skipped or partly measured


def pair_with_ground_truth(method_dir: Path, gt_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """Each image of ``method_dir`` with its ground truth (same relative name, any suffix)."""
    outputs = list_images([method_dir])
    if not outputs:
        raise InvalidImageError(str(method_dir), "no images in this folder")
    if gt_dir is None:
        return [(path, None) for path in outputs]
    truths = {path.relative_to(gt_dir).with_suffix(""): path for path in list_images([gt_dir])}
    pairs = [(path, truths.get(path.relative_to(method_dir).with_suffix(""))) for path in outputs]
    missing = [str(path.relative_to(method_dir)) for path, truth in pairs if truth is None]
    if missing:
        raise InvalidImageError(
            str(method_dir), f"{len(missing)} image(s) have no ground truth of the same name in {gt_dir}: {missing[:5]}"
        )
    return pairs


def method_names(method_dirs: Sequence[Path]) -> list[str]:
    """Folder names, prefixed by their parent where two methods share a name."""
    names = [Path(d).name for d in method_dirs]
    return [
        f"{Path(d).parent.name}/{name}" if names.count(name) > 1 else name
        for d, name in zip(method_dirs, names, strict=True)
    ]


def evaluate_folders(
    method_dirs: Sequence[str | os.PathLike], config: EvaluationConfig, *, show_progress: bool = True
) -> EvaluationReport:
    """Score every image of every method folder and summarise each metric per method."""
    method_dirs = [Path(d) for d in method_dirs]
    for folder in method_dirs:
        if not folder.is_dir():
            raise InvalidImageError(str(folder), "is not a folder of restored faces")
    learned = load_learned_metrics([k for k in config.learned_metrics if k in config.metric_keys], device=config.device)
    reference_faces = _reference_face_cache() if config.identity and config.gt_dir is not None else None
    person_references = _person_reference_cache(config.references_dir) if config.references_dir else None
    methods = []
    for name, folder in zip(method_names(method_dirs), method_dirs, strict=True):
        pairs = dict(pair_with_ground_truth(folder, config.gt_dir))
        result = MethodResult(name=name, folder=folder)
        batch = run_batch(
            pairs,
            lambda path, pairs=pairs, folder=folder: (
                _score_image(path, pairs[path], config, learned, reference_faces)
                | _reference_scores(path, path.relative_to(folder), person_references)
            ),
            desc=f"Evaluating {name}",
            show_progress=show_progress,
        )
        result.per_image = [(str(path.relative_to(folder)), scores) for path, scores in batch.results]
        result.failures = [message for _, message in batch.failures]
        result.summary = _summarise(result.per_image, config.metric_keys, len(pairs), learned.skipped)
        if "fid" in learned.scorers:
            result.summary["fid"] = MetricSummary(learned.scorers["fid"](folder, config.gt_dir), len(pairs), len(pairs))
        methods.append(result)
    return EvaluationReport(methods=methods, metric_keys=config.metric_keys, notes=_notes(methods, learned, config))


def _score_image(
    path: Path, truth_path: Path | None, config: EvaluationConfig, learned: LearnedMetrics, reference_faces
) -> dict[str, float | None]:
    """All per-image metrics of one output (set-level ones such as FID are done per folder)."""
    restored = load_rgb(path)
    scores: dict[str, float | None] = {}
    if truth_path is not None:
        truth = load_rgb(truth_path)
        if truth.shape != restored.shape:
            raise InvalidImageError(
                str(path),
                f"is {restored.shape[1]}x{restored.shape[0]} but its ground truth {truth_path} is "
                f"{truth.shape[1]}x{truth.shape[0]}; restore at the ground truth's size",
            )
        for channel in ("y", "rgb"):
            scores[f"psnr_{channel}"] = psnr(restored, truth, channel=channel)
            scores[f"ssim_{channel}"] = ssim(restored, truth, channel=channel)
        if reference_faces is not None:
            scores.update(_identity_scores(restored, reference_faces(truth_path)))
        if "lpips" in learned.scorers:
            scores["lpips"] = learned.scorers["lpips"](restored, truth)
    if config.niqe:
        scores["niqe"] = niqe_or_none(restored)
    for key in ("musiq", "maniqa", "clipiqa"):
        if key in learned.scorers:
            scores[key] = learned.scorers[key](restored)
    return scores


def _identity_scores(restored: np.ndarray, reference) -> dict[str, float | None]:
    from ..faces.compare import compare_faces, measure_face

    compared = compare_faces(measure_face(restored), reference)
    if compared is None:
        return dict.fromkeys(IDENTITY_METRICS)
    return {
        "identity_similarity": compared.similarity,
        "identity_angle": compared.angle,
        "lmd": compared.landmark_distance,
    }


def _reference_scores(path: Path, name: Path, person_references) -> dict[str, float | None]:
    """{"reference_distance": mean identity distance from the output's face to its person's references} (None
    where the output has no face, or no reference photo with a face); {} without a references folder."""
    if person_references is None:
        return {}
    from ..faces.compare import measure_face
    from ..references import mean_distances

    embedding = measure_face(load_rgb(path)).descriptor
    distances = mean_distances(embedding, person_references(name.with_suffix("")))
    return {"reference_distance": next(iter(distances.values()), None)}


def _person_reference_cache(folder: Path):
    """relative name without suffix -> its references (``REF/<name>/*`` or ``REF/<name>.*``), embedded once."""
    from ..io import load_image
    from ..references import embed_reference

    @cache
    def references(name: Path):
        photos = list_images([folder / name]) if (folder / name).is_dir() else []
        photos = photos or [path for path in list_images([folder]) if path.relative_to(folder).with_suffix("") == name]
        return [embed_reference(load_image(photo)) for photo in photos]

    return references


def _reference_face_cache():
    """path -> FaceMeasurement of a ground-truth face, measured once and shared by all methods."""
    from ..faces.compare import measure_face

    @cache
    def measure(path: Path):
        return measure_face(load_rgb(path))

    return measure


def _summarise(
    per_image: list[tuple[str, dict[str, float | None]]], keys: Sequence[str], total: int, skipped: dict[str, str]
) -> dict[str, MetricSummary]:
    summary = {}
    for key in keys:
        if key in skipped:
            summary[key] = MetricSummary(None, 0, total, skipped[key])
            continue
        values = [scores[key] for _, scores in per_image if scores.get(key) is not None]
        summary[key] = MetricSummary(float(np.mean(values)) if values else None, len(values), total)
    return summary


def _notes(methods: list[MethodResult], learned: LearnedMetrics, config: EvaluationConfig) -> dict[str, str]:
    """Why a metric is skipped or measured on fewer images than the folder holds."""
    notes = {key: f"skipped: {reason}" for key, reason in learned.skipped.items()}
    partial = any(
        s.count < s.total for m in methods for k, s in m.summary.items() if k in IDENTITY_METRICS and k not in notes
    )
    if partial:
        notes["identity_similarity"] = (
            "dlib found no face in some outputs or ground truths; identity metrics average the faces found "
            "(count shown as found/total)"
        )
    if config.niqe and any(s.count < s.total for m in methods for k, s in m.summary.items() if k == "niqe"):
        notes["niqe"] = f"NIQE needs textured images of at least {NIQE_MIN_SIDE} px a side; others are left out"
    if config.gt_dir is None:
        notes["reference"] = "no ground truth given (--gt): only no-reference metrics apply"
    if any(s.count < s.total for m in methods for k, s in m.summary.items() if k == "reference_distance"):
        notes["reference_distance"] = (
            "some outputs have no face, or no reference photo with a face, in --references; the mean is over the rest"
        )
    return notes
