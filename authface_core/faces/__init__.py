"""Face geometry as small pure functions over (H, W, 3) RGB uint8 arrays.

The flow: ``detect_faces`` (boxes + 68 landmarks) -> ``select_faces`` -> ``align_face`` (FFHQ
crop and its affine) -> restore the crop -> ``paste_faces`` (inverse warp, feathered blend).
``facial_regions`` gives eye and mouth boxes of an aligned face; ``face_descriptor`` its identity
(through an ``IdentityModel``, dlib's by default); ``measure_face`` and ``compare_faces`` score a
restored face against another (identity distance, landmark shift).
Nothing here keeps state between calls.
"""

from .align import AlignedFace, align_face, ffhq_affine, template_affine
from .blend import paste_faces, upscale_image
from .compare import FaceMeasurement, IdentityScores, compare_faces, measure_face
from .detect import DetectedFace, FaceBox, Landmarks, detect_faces, detect_landmarks
from .identity import DLIB_IDENTITY, IdentityModel, face_descriptor, identity_similarity
from .regions import FacialRegions, RegionBox, facial_regions, region_mask
from .select import FaceSelection, select_faces

__all__ = [
    "DLIB_IDENTITY",
    "AlignedFace",
    "DetectedFace",
    "FaceBox",
    "FaceMeasurement",
    "FaceSelection",
    "FacialRegions",
    "IdentityModel",
    "IdentityScores",
    "Landmarks",
    "RegionBox",
    "align_face",
    "compare_faces",
    "detect_faces",
    "detect_landmarks",
    "face_descriptor",
    "facial_regions",
    "ffhq_affine",
    "identity_similarity",
    "measure_face",
    "paste_faces",
    "region_mask",
    "select_faces",
    "template_affine",
    "upscale_image",
]
