"""The metrics AuthFace reports: their keys, table labels, direction and what they need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is named, read and printed.

    Args:
        key: column name in CSV files and in code.
        label: column header in Markdown tables.
        higher_is_better: direction, shown as an arrow in the table header.
        needs_reference: True when the metric compares with a ground-truth image.
        digits: decimals printed in tables.
    """

    key: str
    label: str
    higher_is_better: bool
    needs_reference: bool
    digits: int

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


_SPECS = (
    MetricSpec("psnr_y", "PSNR (Y)", True, True, 2),
    MetricSpec("ssim_y", "SSIM (Y)", True, True, 4),
    MetricSpec("psnr_rgb", "PSNR (RGB)", True, True, 2),
    MetricSpec("ssim_rgb", "SSIM (RGB)", True, True, 4),
    MetricSpec("lpips", "LPIPS", False, True, 4),
    MetricSpec("identity_similarity", "ID sim", True, True, 3),
    MetricSpec("identity_angle", "Deg (dlib)", False, True, 2),
    MetricSpec("lmd", "LMD", False, True, 2),
    MetricSpec("fid", "FID", False, True, 2),
    MetricSpec("reference_distance", "Ref dist", False, False, 3),
    MetricSpec("niqe", "NIQE", False, False, 3),
    MetricSpec("musiq", "MUSIQ", True, False, 2),
    MetricSpec("maniqa", "MANIQA", True, False, 4),
    MetricSpec("clipiqa", "CLIPIQA", True, False, 4),
)
METRIC_SPECS: dict[str, MetricSpec] = {spec.key: spec for spec in _SPECS}
