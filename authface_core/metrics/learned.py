"""Learned metrics (LPIPS, FID, MUSIQ, MANIQA, CLIPIQA) through pyiqa, when it and its weights can be had.

These metrics need network weights that pyiqa downloads on first use (into torch's hub cache) on
a machine with internet. Where pyiqa is not installed or the weights cannot be loaded, the metric
is *skipped* with a note saying why, and the tables show "skipped" with that note: never a
silent gap, never a made-up value.

pyiqa (chaofengc/IQA-PyTorch) is the well-kept toolbox the BFR literature uses for these numbers;
it is an optional dependency (``pip install pyiqa``), imported lazily here only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Our metric key -> (pyiqa metric name, kind). Kinds: "full-reference" (image vs its ground truth),
# "no-reference" (image alone), "set" (a folder of outputs vs the folder of ground truths).
LEARNED_METRICS: dict[str, tuple[str, str]] = {
    "lpips": ("lpips", "full-reference"),
    "fid": ("fid", "set"),
    "musiq": ("musiq", "no-reference"),
    "maniqa": ("maniqa", "no-reference"),
    "clipiqa": ("clipiqa", "no-reference"),
}
PYIQA_INSTALL_NOTE = "pyiqa is not installed (pip install pyiqa; its weights download on first use, with internet)"


@dataclass
class LearnedMetrics:
    """Loaded learned metrics and the ones skipped, each with the reason.

    ``scorers`` maps a metric key to a callable: full-reference ``(restored, reference) -> float``,
    no-reference ``(restored) -> float`` (images (H, W, 3) uint8), set ``(method_dir, gt_dir) -> float``.
    """

    scorers: dict[str, Callable[..., float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def load_learned_metrics(keys: Sequence[str], *, device: str = "cpu") -> LearnedMetrics:
    """Create the pyiqa metrics named by ``keys``; each one that cannot be loaded is recorded as skipped."""
    unknown = sorted(set(keys) - set(LEARNED_METRICS))
    if unknown:
        raise ValueError(f"unknown learned metric(s) {unknown}; choose from {sorted(LEARNED_METRICS)}")
    loaded = LearnedMetrics()
    if not keys:
        return loaded
    try:
        import pyiqa
    except ImportError:
        loaded.skipped = {key: PYIQA_INSTALL_NOTE for key in keys}
        return loaded
    for key in keys:
        pyiqa_name, kind = LEARNED_METRICS[key]
        try:
            metric = pyiqa.create_metric(pyiqa_name, device=device)
        except (OSError, RuntimeError, ValueError, KeyError) as error:  # download refused offline, bad cache
            loaded.skipped[key] = f"pyiqa could not load the {pyiqa_name} weights ({type(error).__name__}: {error})"
            logger.warning("skipping %s: %s", key, loaded.skipped[key])
            continue
        loaded.scorers[key] = _wrap(metric, kind)
    return loaded


def _wrap(metric, kind: str) -> Callable[..., float]:
    """Adapt a pyiqa metric to our images (uint8 HWC) and folders."""
    if kind == "set":
        return lambda method_dir, gt_dir: float(metric(str(Path(method_dir)), str(Path(gt_dir))))
    if kind == "full-reference":
        return lambda restored, reference: float(metric(_to_tensor(restored), _to_tensor(reference)).item())
    return lambda restored: float(metric(_to_tensor(restored)).item())


def _to_tensor(rgb: np.ndarray):
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1], pyiqa's input."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255.0).unsqueeze(0)
