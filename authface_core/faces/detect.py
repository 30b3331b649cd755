"""Face detection and 68-point landmarks with dlib.

Images are (H, W, 3) RGB uint8 arrays (see ``authface_core.io``). Coordinates are pixels of the
image passed in, x to the right and y down, with pixel centres at integers (OpenCV's convention).

Large photos are detected on a downscaled copy (``max_side``) for speed; the 68 landmarks are then
found at full resolution inside the scaled-back box, so they keep full precision.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import MissingDependencyError

# dlib's 68-point scheme (iBUG 300-W): index ranges of the parts we use.
LEFT_EYE_68 = slice(36, 42)  # the eye on the image's left
RIGHT_EYE_68 = slice(42, 48)
NOSE_TIP_68 = 30
MOUTH_LEFT_68, MOUTH_RIGHT_68 = 48, 54
MOUTH_68 = slice(48, 68)

DETECTORS = ("hog", "cnn")
# Faces that only the upsampled HOG pass finds need this detector score: measured on
# ../shared/faces, real small faces score above 1, while the upsampled pass's false alarms
# (on clothing, for example in skimage's astronaut photo) score near 0.1.
UPSAMPLED_MIN_SCORE = 0.3
DEFAULT_MAX_SIDE = 1024


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in image pixels, with the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def scaled(self, factor: float) -> FaceBox:
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score)

    def to_dict(self) -> dict:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom, "score": self.score}


@dataclass(frozen=True)
class Landmarks:
    """Facial landmark points, (N, 2) float64 x, y, tagged with their scheme.

    Schemes: ``"dlib68"`` (iBUG 68 points) and ``"five"`` (left eye centre, right eye centre,
    nose tip, left mouth corner, right mouth corner; "left" means the image's left), which is the
    order of the FFHQ 5-point template in ``align.py``.
    """

    points: np.ndarray
    scheme: str

    def __post_init__(self):
        expected = {"dlib68": 68, "five": 5}
        if self.scheme not in expected:
            raise ValueError(f"scheme must be one of {sorted(expected)}, got {self.scheme!r}")
        if self.points.shape != (expected[self.scheme], 2):
            raise ValueError(
                f"{self.scheme} landmarks need shape ({expected[self.scheme]}, 2), got {self.points.shape}"
            )

    def to_five(self) -> Landmarks:
        """The five points (eye centres, nose tip, mouth corners) derived from the 68."""
        if self.scheme == "five":
            return self
        p = self.points
        five = np.stack(
            [
                p[LEFT_EYE_68].mean(axis=0),
                p[RIGHT_EYE_68].mean(axis=0),
                p[NOSE_TIP_68],
                p[MOUTH_LEFT_68],
                p[MOUTH_RIGHT_68],
            ]
        )
        return Landmarks(five, "five")

    def transformed(self, affine: np.ndarray) -> Landmarks:
        """The same points mapped through a (2, 3) affine matrix."""
        return Landmarks(self.points @ affine[:, :2].T + affine[:, 2], self.scheme)  # see align.apply_affine

    def to_list(self) -> list[list[float]]:
        return np.round(self.points, 2).tolist()


@dataclass(frozen=True)
class DetectedFace:
    """One detected face: its box and its dlib 68 landmarks, both in the photo's pixels."""

    box: FaceBox
    landmarks: Landmarks


def model_path(filename: str) -> Path:
    """Path of a dlib model file shipped by the ``face_recognition_models`` package.

    Found through importlib rather than the package's own ``pkg_resources`` call, which newer
    setuptools no longer provide.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("face_recognition_models", "dlib's face models", "face-recognition-models")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise MissingDependencyError("face_recognition_models", f"the model file {filename}", "face-recognition-models")
    return path


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise MissingDependencyError("dlib", "face detection, landmarks and identity", "dlib-bin") from None
    return dlib


# dlib's detectors, shape predictor and descriptor model are shared objects that are not
# thread-safe: two threads running them at once corrupt the heap ("free(): invalid size"), as
# seen with the annotation app's background prefetch. Every call into them holds this lock.
DLIB_LOCK = threading.RLock()


@cache
def _hog_detector():
    return import_dlib().get_frontal_face_detector()


@cache
def _cnn_detector():
    return import_dlib().cnn_face_detection_model_v1(str(model_path("mmod_human_face_detector.dat")))


@cache
def _shape_predictor_68():
    return import_dlib().shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def detect_boxes(
    rgb: np.ndarray, *, detector: str = "hog", max_side: int = DEFAULT_MAX_SIDE, upsample: int = 1
) -> list[FaceBox]:
    """Face boxes in ``rgb``'s pixels, found on a copy at most ``max_side`` pixels wide/high.

    ``upsample`` is dlib's pyramid upsampling count for small faces: 1 finds faces down to about
    40 px on the detection copy. With the HOG detector, faces found without upsampling keep that
    box: the landmark predictor starts from the box, and those boxes give FFHQ's crops back
    more closely (on FFHQ faces, median scale error 0.3% against 1.1% with upsampled boxes).
    The CNN detector is slower but finds profile and small faces the HOG one misses.
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = (
        rgb
        if scale == 1.0
        # at least 1 px a side: a 65000x10 strip is a valid photo, only too thin to hold a face
        else cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    )
    if detector == "hog":
        with DLIB_LOCK:
            rects, scores, _ = _hog_detector().run(small, 0, 0.0)
        found = list(zip(rects, scores, strict=True))
        if upsample > 0:
            with DLIB_LOCK:
                more, more_scores, _ = _hog_detector().run(small, upsample, 0.0)
            found += [
                (r, s)
                for r, s in zip(more, more_scores, strict=True)
                if s >= UPSAMPLED_MIN_SCORE and all(_iou(r, kept) < 0.3 for kept, _ in found)
            ]
    else:
        with DLIB_LOCK:
            found = [(d.rect, d.confidence) for d in _cnn_detector()(small, upsample)]
    return [
        FaceBox(r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale, float(s))
        for r, s in found
    ]


def _iou(a, b) -> float:
    """Intersection over union of two dlib rectangles."""
    intersection = a.intersect(b).area() if a.intersect(b).width() > 0 and a.intersect(b).height() > 0 else 0
    return intersection / (a.area() + b.area() - intersection)


def detect_landmarks(rgb: np.ndarray, box: FaceBox) -> Landmarks:
    """dlib's 68 landmarks inside ``box``, at the full resolution of ``rgb``."""
    dlib = import_dlib()
    rgb = _check_rgb(rgb)
    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
    with DLIB_LOCK:
        shape = _shape_predictor_68()(rgb, rect)
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
    return Landmarks(points, "dlib68")


def detect_faces(
    rgb: np.ndarray, *, detector: str = "hog", max_side: int = DEFAULT_MAX_SIDE, upsample: int = 1
) -> list[DetectedFace]:
    """Every face in the photo with its 68 landmarks, largest first."""
    boxes = detect_boxes(rgb, detector=detector, max_side=max_side, upsample=upsample)
    faces = [DetectedFace(box, detect_landmarks(rgb, box)) for box in boxes]
    return sorted(faces, key=lambda face: face.box.area, reverse=True)
