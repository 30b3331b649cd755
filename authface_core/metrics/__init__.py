"""Evaluation metrics and reports: what ``python -m authface_core evaluate`` and ``bench/quality.py`` compute.

Images are (H, W, 3) RGB uint8 aligned faces. Modules, one concern each (import the one you need;
this package imports none of them, so that importing one metric does not load the others):

- ``fidelity``: PSNR and SSIM on the Y channel and on RGB (scikit-image's, on those planes);
- ``learned``: LPIPS, FID, MUSIQ, MANIQA, CLIPIQA through pyiqa, skipped with a note when missing;
- ``evaluate``: folders of outputs (and ground truth) -> per-image scores and per-method means;
- ``report``, ``plot``: Markdown and CSV tables and a PNG plot; ``specs``: names and directions;
- ``stats``: ROC AUC and thresholds used to calibrate ``authface_core.authenticity``.

NIQE (``authface_core.niqe``) and the identity measurements (``authface_core.faces.compare``) live in
the core, which needs them for the authenticity check and never imports this package.
"""
