"""Which detected faces to restore: all, the largest, the most central, above a minimum size."""

from __future__ import annotations

from dataclasses import dataclass, field

from .detect import DetectedFace

SELECTION_MODES = ("all", "largest", "central")


@dataclass(frozen=True)
class FaceSelection:
    """The faces chosen for restoration, and each face left out with the reason why."""

    selected: list[DetectedFace] = field(default_factory=list)
    skipped: list[tuple[DetectedFace, str]] = field(default_factory=list)


def select_faces(
    faces: list[DetectedFace], image_size: tuple[int, int], *, mode: str = "all", min_size: float = 0
) -> FaceSelection:
    """Apply the size filter, then the mode; ``image_size`` is (width, height).

    ``min_size`` is the minimum face box side in photo pixels (the box's larger side).
    """
    if mode not in SELECTION_MODES:
        raise ValueError(f"face selection mode must be one of {SELECTION_MODES}, got {mode!r}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size!r}")
    skipped: list[tuple[DetectedFace, str]] = []
    candidates = []
    for face in faces:
        side = max(face.box.width, face.box.height)
        if side < min_size:
            skipped.append((face, f"face is {side:.0f} px, smaller than the minimum of {min_size:.0f} px"))
        else:
            candidates.append(face)
    if mode == "all" or len(candidates) <= 1:
        return FaceSelection(candidates, skipped)
    if mode == "largest":
        chosen = max(candidates, key=lambda face: face.box.area)
        reason = "not the largest face"
    else:
        centre_x, centre_y = image_size[0] / 2, image_size[1] / 2
        chosen = min(candidates, key=lambda f: (f.box.center[0] - centre_x) ** 2 + (f.box.center[1] - centre_y) ** 2)
        reason = "not the most central face"
    skipped += [(face, reason) for face in candidates if face is not chosen]
    return FaceSelection([chosen], skipped)


def left_to_right(faces: list[DetectedFace]) -> list[DetectedFace]:
    """Faces by position: left to right by their centres, then top to bottom, an order a resize does not change
    (how restore numbers faces, and how a reference photo's faces are picked)."""
    return sorted(faces, key=lambda face: (face.box.center[0], face.box.center[1]))
