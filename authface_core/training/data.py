"""Training data: a `datasets` dataset of faces, aligned once, turned into tensors on the fly.

Sources (:func:`load_face_dataset`): a local folder of images (``imagefolder``; captions from a
``metadata.jsonl``/``metadata.csv`` beside them), a folder of Parquet files or one Parquet file,
or a Hub dataset id such as the one the annotation app publishes (columns ``original``,
``retouched`` (Image) and ``caption``). ``streaming=True`` reads large sets lazily.

Preparation (:func:`prepare_faces`) runs once per example and is cached by `datasets`: it either
aligns the largest face of a photo FFHQ-style (``align=True``) or takes an already aligned square
face, finds its 68 landmarks, and keeps the face at ``face_size`` with its landmarks. Examples
where no face is found are dropped (and counted in the log).

Per step (:func:`stage1_example`, :func:`stage2_example`): Stage I gets SDXL's resize + crop with
micro-conditioning (original size, crop top-left); Stage II degrades the face at ``face_size``
with a seeded :class:`~authface_core.degradations.DegradationConfig` (the ranges are meant for
512 px faces), then resizes HQ and LQ to the training resolution and scales the eye and mouth
boxes with them. Pixels are HWC RGB uint8 until the final tensors (CHW float). Where ``cache.py``
added encoded columns, an example carries the stored encodings instead of the pixels or caption
they were computed from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from ..degradations import DegradationConfig, degrade
from ..errors import InvalidImageError
from ..io import pil_to_rgb, resize_image

logger = logging.getLogger(__name__)

# Preferred HQ image columns, in order: the annotation app's retouched photo first.
IMAGE_COLUMN_CANDIDATES = ("retouched", "image", "hq", "original")
CAPTION_COLUMN = "caption"
FACE_COLUMN, LANDMARKS_COLUMN = "face", "landmarks"
# Columns ``cache.py`` adds: the VAE posterior of the training image, the caption's text embeddings.
LATENT_COLUMN = "latent_parameters"
PROMPT_EMBEDS_COLUMN, POOLED_EMBEDS_COLUMN = "prompt_embeds", "pooled_prompt_embeds"


def load_face_dataset(source: str, *, split: str = "train", streaming: bool = False, cache_dir: str | None = None):
    """A `datasets` split from a local image folder, Parquet file(s) or a Hub dataset id."""
    from datasets import load_dataset

    path = Path(source)
    if path.is_dir():
        parquet_files = sorted(str(p) for p in path.rglob("*.parquet"))
        if parquet_files:
            builder, kwargs = "parquet", {"data_files": {split: parquet_files}}
        else:
            builder, kwargs = "imagefolder", {"data_dir": str(path)}
    elif path.suffix == ".parquet":
        if not path.is_file():
            raise FileNotFoundError(f"{source}: Parquet file not found")
        builder, kwargs = "parquet", {"data_files": {split: [str(path)]}}
    elif path.exists() or source.startswith((".", "/")):
        raise FileNotFoundError(f"{source}: not a folder of images or Parquet files, nor a .parquet file")
    else:
        builder, kwargs = source, {}
    try:
        return load_dataset(builder, split=split, streaming=streaming, cache_dir=cache_dir, **kwargs)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        raise FileNotFoundError(f"{source}: could not load the training data ({error})") from error


def resolve_image_column(column_names: list[str], requested: str | None = None) -> str:
    """The HQ image column: ``requested`` when given, else the first of IMAGE_COLUMN_CANDIDATES present."""
    if requested is not None:
        if requested not in column_names:
            raise ValueError(f"image column {requested!r} not in the dataset's columns {column_names}")
        return requested
    for candidate in IMAGE_COLUMN_CANDIDATES:
        if candidate in column_names:
            return candidate
    raise ValueError(f"no image column among {column_names}; pass one of them as --image_column")


def pil_to_training_rgb(image) -> np.ndarray:
    """A `datasets` Image value (PIL image) as (H, W, 3) uint8 sRGB, decoded as ``io.load_rgb`` decodes files
    (embedded colour profile applied, 16-bit scaled), so training sees the colours inference will."""
    return pil_to_rgb(image)[0]


def find_face(
    rgb: np.ndarray, *, align: bool, face_size: int, source: str = "training example"
) -> tuple[np.ndarray, np.ndarray] | None:
    """(face (face_size, face_size, 3) uint8, landmarks (68, 2) in its pixels), or None without a face.

    ``align``: align the largest face of a photo FFHQ-style; else ``rgb`` must already be an
    aligned square face, resized here. ``source`` names the image in errors.
    """
    from ..faces.align import align_face
    from ..faces.detect import detect_faces

    faces = detect_faces(rgb)
    if not faces:
        return None
    if align:
        aligned = align_face(rgb, faces[0], size=face_size)
        return aligned.image, aligned.landmarks.points
    if rgb.shape[0] != rgb.shape[1]:
        raise InvalidImageError(
            source, f"is {rgb.shape[1]}x{rgb.shape[0]}, not an aligned square face; use --align_faces"
        )
    return resize_image(rgb, face_size, face_size), faces[0].landmarks.points * (face_size / rgb.shape[0])


def _prepare_example(example: dict, *, image_column: str, align: bool, face_size: int) -> dict:
    image = example[image_column]
    source = getattr(image, "filename", "") or f"a training example ({image_column!r} column)"
    found = find_face(pil_to_training_rgb(image), align=align, face_size=face_size, source=source)
    if found is None:
        return {FACE_COLUMN: None, LANDMARKS_COLUMN: None}
    from PIL import Image

    face, landmarks = found
    return {FACE_COLUMN: Image.fromarray(face), LANDMARKS_COLUMN: landmarks.tolist()}


def prepare_faces(dataset, image_column: str, *, align: bool, face_size: int):
    """Add ``face`` (aligned, face_size) and ``landmarks`` (68 x 2) columns; drop examples without a face.

    A dataset that already has both columns (prepared once and saved, which a streamed set should
    be, since a stream is prepared again on every pass) is returned unchanged.
    """
    if {FACE_COLUMN, LANDMARKS_COLUMN} <= set(dataset.column_names or []):
        return dataset
    prepare = partial(_prepare_example, image_column=image_column, align=align, face_size=face_size)
    kwargs = {} if _is_streaming(dataset) else {"desc": "Aligning faces"}
    prepared = dataset.map(prepare, remove_columns=[image_column], **kwargs)  # the face replaces the photo
    kept = prepared.filter(lambda example: example[LANDMARKS_COLUMN] is not None)
    if not _is_streaming(dataset):
        dropped = len(prepared) - len(kept)
        if dropped:
            logger.warning(
                "%d of %d training examples have no detectable face and were dropped", dropped, len(prepared)
            )
        if len(kept) == 0:
            raise ValueError(f"none of the {len(prepared)} training examples has a detectable face")
    return kept


def _is_streaming(dataset) -> bool:
    from datasets import IterableDataset

    return isinstance(dataset, IterableDataset)


def to_model_pixels(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1], the VAE's input range."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1.0


def to_control_pixels(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1], the ControlNet's input range (diffusers' control images)."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def region_boxes(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(68, 2) landmarks of a size x size aligned face -> (2, 4) float boxes (eyes, mouth) x0, y0, x1, y1."""
    from ..faces.detect import Landmarks
    from ..faces.regions import facial_regions

    regions = facial_regions(Landmarks(np.asarray(landmarks, dtype=np.float64), "dlib68"), size=size)
    return np.array([[box.x0, box.y0, box.x1, box.y1] for box in (regions.eyes, regions.mouth)], dtype=np.float32)


def stored_tensor(value) -> torch.Tensor:
    """A cached column's value (nested lists as `datasets` returns them) as a float32 tensor."""
    return torch.from_numpy(np.asarray(value, dtype=np.float32))


def stage2_example(
    example: dict, rng: np.random.Generator, *, resolution: int, degradation: DegradationConfig, random_flip: bool
) -> dict:
    """One (LQ, HQ) pair: hq (3, R, R) in [-1, 1] (or, cached, the HQ latent's posterior as
    ``latent_parameters``), lq (3, R, R) in [0, 1], region_boxes (2, 4) pixels at R."""
    face = pil_to_training_rgb(example[FACE_COLUMN])
    face_size = face.shape[0]
    boxes = region_boxes(example[LANDMARKS_COLUMN], face_size)
    lq, _ = degrade(face, degradation, rng)
    hq, lq = resize_image(face, resolution, resolution), resize_image(lq, resolution, resolution)
    boxes = boxes * (resolution / face_size)
    if random_flip and rng.random() < 0.5:
        hq, lq = hq[:, ::-1].copy(), lq[:, ::-1].copy()
        boxes = np.stack([resolution - boxes[:, 2], boxes[:, 1], resolution - boxes[:, 0], boxes[:, 3]], axis=1)
    if LATENT_COLUMN in example:  # cached: the settings refuse random_flip, so the stored latent is this hq
        target = {LATENT_COLUMN: stored_tensor(example[LATENT_COLUMN])}
    else:
        target = {"hq": to_model_pixels(hq)}
    return {**target, "lq": to_control_pixels(lq), "region_boxes": torch.from_numpy(boxes)}


def sdxl_resize_and_crop(
    rgb: np.ndarray, resolution: int, rng: np.random.Generator, *, random_crop: bool, random_flip: bool
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """SDXL's training crop: shorter side to ``resolution``, optional mirror, square crop; also
    returns the micro-conditioning (original (height, width), crop (top, left)) of the crop it
    made (Podell et al. 2023, Sec. 2.2)."""
    height, width = rgb.shape[:2]
    scale = resolution / min(height, width)
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, new_size, interpolation=interpolation)
    if random_flip and rng.random() < 0.5:
        resized = resized[:, ::-1]
    spare_y, spare_x = resized.shape[0] - resolution, resized.shape[1] - resolution
    if random_crop:
        top, left = int(rng.integers(0, spare_y + 1)), int(rng.integers(0, spare_x + 1))
    else:
        top, left = spare_y // 2, spare_x // 2
    crop = np.ascontiguousarray(resized[top : top + resolution, left : left + resolution])
    return crop, (height, width), (top, left)


def stage1_example(
    example: dict,
    rng: np.random.Generator,
    *,
    image_column: str,
    resolution: int,
    random_crop: bool,
    random_flip: bool,
    proportion_empty_prompts: float = 0.0,
) -> dict:
    """One captioned photo: pixels (3, R, R) in [-1, 1], original_size, crop_top_left, caption.

    The caption is dropped (empty prompt) with probability ``proportion_empty_prompts``, so the
    tuned model keeps an unconditional mode for classifier-free guidance. Cached columns replace the
    pixels (``latent_parameters``) and carry the caption's embeddings (used unless it was dropped).
    """
    rgb = pil_to_training_rgb(example[image_column])
    crop, original_size, crop_top_left = sdxl_resize_and_crop(
        rgb, resolution, rng, random_crop=random_crop, random_flip=random_flip
    )
    caption = example.get(CAPTION_COLUMN) or ""
    if LATENT_COLUMN in example:  # cached: the settings refuse random crops and flips, so this is that crop
        image = {LATENT_COLUMN: stored_tensor(example[LATENT_COLUMN])}
    else:
        image = {"pixels": to_model_pixels(crop)}
    embeddings = {
        column: stored_tensor(example[column])
        for column in (PROMPT_EMBEDS_COLUMN, POOLED_EMBEDS_COLUMN)
        if column in example
    }
    return {
        **image,
        **embeddings,
        "original_size": torch.tensor(original_size),
        "crop_top_left": torch.tensor(crop_top_left),
        "caption": "" if rng.random() < proportion_empty_prompts else caption,
    }


class ExampleDataset(torch.utils.data.Dataset):
    """A map-style `datasets` dataset as training tensors; example i of epoch e draws from rng([seed, e, i])."""

    def __init__(self, dataset, make_example: Callable[[dict, np.random.Generator], dict], seed: int):
        self.dataset, self.make_example, self.seed, self.epoch = dataset, make_example, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.make_example(self.dataset[index], np.random.default_rng([self.seed, self.epoch, index]))


class StreamingExampleDataset(torch.utils.data.IterableDataset):
    """A streaming `datasets` dataset turned into training tensors, split across DataLoader workers."""

    def __init__(self, dataset, make_example: Callable[[dict, np.random.Generator], dict], seed: int):
        self.dataset, self.make_example, self.seed, self.epoch = dataset, make_example, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        for count, example in enumerate(self.dataset):
            if count % num_workers == worker_id:
                yield self.make_example(example, np.random.default_rng([self.seed, self.epoch, count]))


def example_dataset(dataset, make_example: Callable[[dict, np.random.Generator], dict], seed: int):
    """The right torch dataset wrapper for a map-style or streaming `datasets` dataset."""
    wrapper = StreamingExampleDataset if _is_streaming(dataset) else ExampleDataset
    return wrapper(dataset, make_example, seed)


def collate_examples(examples: list[dict]) -> dict:
    """Stack tensors along a new batch dimension; keep strings (captions) as lists."""
    return {
        key: torch.stack([e[key] for e in examples])
        if isinstance(examples[0][key], torch.Tensor)
        else [e[key] for e in examples]
        for key in examples[0]
    }
