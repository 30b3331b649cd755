"""Evaluation metrics and reports: what ``python -m authface_core evaluate`` and ``bench/quality.py`` compute.

Images are (H, W, 3) RGB uint8 aligned faces. Modules, one concern each:

- ``fidelity``: PSNR and SSIM on the Y channel and on RGB (equal to scikit-image's);
- ``niqe``: NIQE with the published pristine model (package data ``data/niqe_pris_params.npz``);
- ``identity``: dlib identity similarity, a Deg-like angle and LMD on faces at 512 px;
- ``learned``: LPIPS, FID, MUSIQ, MANIQA, CLIPIQA through pyiqa, skipped with a note when missing;
- ``evaluate``: folders of outputs (and ground truth) -> per-image scores and per-method means;
- ``report``, ``plot``: Markdown and CSV tables and a PNG plot; ``specs``: names and directions;
- ``stats``: ROC AUC and thresholds used to calibrate ``authface_core.authenticity``.
"""

from .evaluate import EvaluationConfig, EvaluationReport, evaluate_folders
from .fidelity import psnr, ssim
from .niqe import niqe
from .report import save_report

__all__ = ["EvaluationConfig", "EvaluationReport", "evaluate_folders", "niqe", "psnr", "save_report", "ssim"]
