"""What an evaluation measures: one settings dataclass, read by the ``evaluate`` command's flags and by scripts.

Light on purpose (no OpenCV, torch or dlib), so ``evaluate --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import check_settings, setting
from .learned import LEARNED_METRICS
from .specs import METRIC_SPECS

FIDELITY_METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
IDENTITY_METRICS = ("identity_similarity", "identity_angle", "lmd")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to measure in folders of restored aligned faces."""

    _argument_group_name = "what to measure"

    gt_dir: Path | None = setting(
        None,
        "folder of ground-truth faces with the same file names (synthetic sets); none for real-world sets",
        aliases="--gt",
    )
    references_dir: Path | None = setting(
        None,
        "folder of reference photos of each output's person: REF/<name>/ (1-8 photos) or REF/<name>.<ext> for the "
        "output <name>.<ext>; adds the mean identity distance to them (Ref dist)",
        aliases="--references",
    )
    identity: bool = setting(
        True, "dlib identity similarity, Deg and LMD against the ground truth (about 0.3 s a pair)"
    )
    niqe: bool = setting(True, "NIQE on every output (images of at least 192 px)")
    learned: str = setting(
        "lpips,fid,musiq",
        f"comma-separated learned metrics to try through pyiqa ({', '.join(LEARNED_METRICS)}), or none; "
        "without pyiqa or its weights each is skipped with a note",
    )
    device: str = setting("cpu", "torch device for the learned metrics")

    def __post_init__(self) -> None:
        if isinstance(self.gt_dir, str):
            object.__setattr__(self, "gt_dir", Path(self.gt_dir))
        if isinstance(self.references_dir, str):
            object.__setattr__(self, "references_dir", Path(self.references_dir))
        check_settings(self)
        for name in ("gt_dir", "references_dir"):
            folder = getattr(self, name)
            if folder is not None and not folder.is_dir():
                raise ValueError(f"{name} {str(folder)!r} is not a folder")
        unknown = sorted(set(self.learned_metrics) - set(LEARNED_METRICS))
        if unknown:
            known = ", ".join(LEARNED_METRICS)
            raise ValueError(f"learned has unknown metric(s) {', '.join(unknown)}; choose from {known}")

    @property
    def learned_metrics(self) -> tuple[str, ...]:
        """The learned metrics asked for, as names ("none" asks for none)."""
        names = tuple(name.strip() for name in self.learned.split(",") if name.strip())
        return () if names == ("none",) else names

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The table's columns, in the order of ``specs.METRIC_SPECS``."""
        wanted = set(self.learned_metrics)
        if self.gt_dir is not None:
            wanted |= set(FIDELITY_METRICS) | (set(IDENTITY_METRICS) if self.identity else set())
        else:
            wanted -= {key for key in wanted if METRIC_SPECS[key].needs_reference}
        if self.niqe:
            wanted.add("niqe")
        if self.references_dir is not None:
            wanted.add("reference_distance")
        return tuple(key for key in METRIC_SPECS if key in wanted)
