"""Restore faces in a photo (or an aligned face crop) with the AuthFace pipeline.

Images are (H, W, 3) RGB uint8 (see ``authface_core.io``). The whole-photo path is
detect -> select -> align (FFHQ recipe) -> restore the selected faces in batches -> paste back
into the photo, which is upscaled by ``upscale`` with Lanczos; pixels away from the faces are
only resampled. The aligned path (``aligned=True``) takes a face crop that is already aligned.

Fidelity (``RestoreConfig.fidelity``) in [0, 1]: 0 is the released behaviour (start from pure
noise, full generative prior); the sampler runs only the last floor(N * (1 - fidelity)) of its N
steps, starting from the input face's latent noised to that step, so the output stays closer to
the input as fidelity grows; 1 runs no step (the input through the VAE). See
``authface_core.pipeline.pipeline_authface_sdxl`` for the exact definition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np

from .authenticity import AuthenticityReport, authenticity_report
from .errors import NoFaceDetectedError
from .faces.align import align_face
from .faces.blend import MAX_UPSCALE, paste_faces, upscale_image
from .faces.detect import FaceBox, detect_faces
from .faces.select import SELECTION_MODES, FaceSelection, select_faces
from .io import LoadedImage, resize_image
from .pipeline.constants import (
    COLOR_FIX_METHODS,
    MAX_INFERENCE_STEPS,
    RELEASED_COLOR_FIX,
    RELEASED_FACE_SIZE,
    RELEASED_GUIDANCE_SCALE,
    RELEASED_NEGATIVE_PROMPT,
    RELEASED_NUM_INFERENCE_STEPS,
    RELEASED_PROMPT,
    RELEASED_SEED,
    SCHEDULER_NAMES,
)
from .settings import Range, check_settings, setting

FACE_SELECTION_MODES = SELECTION_MODES  # re-exported for the apps, which import only this module
MIN_FACE_SIZE_PX, MAX_FACE_SIZE_PX = 32, 2048
# Upper bounds this project sets on the settings (the release runs guidance 8).
MAX_GUIDANCE_SCALE = 30.0
MAX_BATCH_SIZE = 64
# The largest integer a browser's number box holds exactly (2**53 - 1), so every seed can be shown and typed back.
MAX_SEED = 2**53 - 1


@dataclass(frozen=True)
class RestoreConfig:
    """Every setting of one restoration; the defaults are the released ones.

    Each field's help, range and choices are its documentation: the ``restore`` flags, YAML settings files and the
    demo's controls are made from them (``authface_core.settings``). Fidelity is defined in the module doc.
    """

    _argument_group_name = "restoration settings (defaults: the release)"

    num_inference_steps: Annotated[int, Range(1, MAX_INFERENCE_STEPS)] = setting(
        RELEASED_NUM_INFERENCE_STEPS, "denoising steps", aliases="--steps"
    )
    fidelity: Annotated[float, Range(0, 1, step=0.05)] = setting(
        0.0, "0 = released (full generative prior) ... 1 = the input through the VAE; higher stays closer to the input"
    )
    guidance_scale: Annotated[float, Range(0, MAX_GUIDANCE_SCALE, step=0.5)] = setting(
        RELEASED_GUIDANCE_SCALE, "classifier-free guidance scale, on when above 1", aliases="--guidance"
    )
    seed: Annotated[int | None, Range(0, MAX_SEED)] = setting(
        RELEASED_SEED, "the one random seed; none draws a fresh one, which is recorded in the result"
    )
    scheduler: Literal[SCHEDULER_NAMES] = setting(
        "ddpm", "the sampler: ddpm as released; dpmpp (the fast preset's), unipc, ddim and euler need fewer steps"
    )
    prompt: str = setting(RELEASED_PROMPT, "positive prompt; the default is the released one")
    negative_prompt: str = setting(RELEASED_NEGATIVE_PROMPT, "negative prompt; the default is the released one")
    color_fix: Literal[COLOR_FIX_METHODS] = setting(
        RELEASED_COLOR_FIX, "colour correction toward the input: wavelet as released, adain, or none"
    )
    face_size: Annotated[int, Range(MIN_FACE_SIZE_PX, MAX_FACE_SIZE_PX, step=8)] = setting(
        RELEASED_FACE_SIZE, "side of the aligned face crop in pixels, a multiple of 8"
    )
    face_selection: Literal[SELECTION_MODES] = setting(
        "all", "which detected faces to restore: all, the largest or the most central", aliases="--select"
    )
    min_face_size: Annotated[int, Range(0, 100_000)] = setting(
        0, "skip faces whose box is smaller than this many pixels"
    )
    upscale: Annotated[int, Range(1, MAX_UPSCALE)] = setting(
        1, "integer output scale of the whole photo (Lanczos; pixels away from faces are only resampled)"
    )
    aligned: bool = setting(
        False, "the input is already an aligned face crop: no detection, the whole image is restored"
    )
    check_identity: bool = setting(
        True, "compare each restored face with its input (authenticity report)", aliases="--no-identity-check"
    )
    preview_every: Annotated[int, Range(0, MAX_INFERENCE_STEPS)] = setting(
        5, "hand a cheap preview to the progress callback every k steps (0: never)"
    )
    max_batch_size: Annotated[int, Range(1, MAX_BATCH_SIZE)] = setting(
        4, "faces restored together in one pipeline call (more: faster, more memory)", aliases="--batch-size"
    )

    def __post_init__(self):
        check_settings(self)
        if self.face_size % 8:
            raise ValueError(f"face_size must be a multiple of 8, got {self.face_size!r}")


# The released settings, and this project's fast path: a multistep solver at 20 steps instead of 50 DDPM steps.
RELEASED_PRESET = RestoreConfig()
FAST_PRESET = RestoreConfig(scheduler="dpmpp", num_inference_steps=20)
PRESETS = {"released": RELEASED_PRESET, "fast": FAST_PRESET}


@dataclass(frozen=True)
class StepProgress:
    """One denoising step done. Faces of a batch advance together: ``face_index`` is the first face of
    the batch and ``preview`` (h, w, 3) uint8 (1/8 of the face size) shows that face, every
    ``preview_every`` steps and at the last step, else None."""

    face_index: int
    num_faces: int
    step: int
    num_steps: int
    preview: np.ndarray | None


@dataclass
class FaceResult:
    """One restored face: its box in the photo (None on the aligned path), its aligned input and output
    crops (S, S, 3) uint8, the photo -> crop affine (None on the aligned path) and the authenticity report."""

    index: int
    box: FaceBox | None
    input_face: np.ndarray
    restored_face: np.ndarray
    affine: np.ndarray | None
    authenticity: AuthenticityReport | None


@dataclass
class RestoreResult:
    """The restored photo (H*upscale, W*upscale, 3) uint8, its alpha if any, the faces restored, the faces
    skipped with the reason, the settings used (with the seed actually drawn) and whether the model
    was the tiny smoke-test model (then the output is not a restoration)."""

    image: np.ndarray
    alpha: np.ndarray | None
    faces: list[FaceResult]
    skipped: list[tuple[FaceBox, str]] = field(default_factory=list)
    config: RestoreConfig = field(default_factory=RestoreConfig)
    smoke_test_model: bool = False


ProgressCallback = Callable[[StepProgress], None]


def describe_progress(step: StepProgress, batch_size: int) -> str:
    """'Faces 1-4 of 6: step 12 of 50', where ``batch_size`` is the ``max_batch_size`` the faces ran with."""
    last = min(step.face_index + batch_size, step.num_faces)
    faces = f"Face {last}" if last == step.face_index + 1 else f"Faces {step.face_index + 1}-{last}"
    return f"{faces} of {step.num_faces}: step {step.step} of {step.num_steps}"


def draw_seed() -> int:
    """A fresh seed of 32 bits: exact in a browser's number box (53 bits), so a shown seed reproduces the run."""
    return secrets.randbits(32)


def restore_image(
    image: np.ndarray | LoadedImage,
    pipe,
    config: RestoreConfig = RestoreConfig(),
    *,
    noise_key: str | None = None,
    progress_callback: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore the selected faces of a photo, or one aligned face when ``config.aligned``.

    ``noise_key`` names the photo within a larger run (its relative file name, or a dataset id): each face then
    draws its noise from its own generator seeded by :func:`face_seeds`, so an archive restores a photo the same
    whatever order, batch partners or process it gets. Without it, one generator seeded by ``config.seed`` serves
    the faces in order, as the release does.

    Raises:
        NoFaceDetectedError: whole-photo mode found no face to restore (the message suggests aligned mode).
        ValueError: an image that is not (H, W, 3) uint8.
    """
    if config.seed is None:
        config = dataclasses.replace(config, seed=draw_seed())
    prepared = prepare_photo(image, config)
    seeds = None if noise_key is None else face_seeds(config.seed, noise_key, len(prepared.faces))
    restored = restore_faces(pipe, prepared.faces, config, seeds=seeds, progress_callback=progress_callback)
    return finish_photo(prepared, restored, config, smoke_test_model=pipe.is_smoke_test_model)


def face_seeds(seed: int, key: str, count: int) -> list[int]:
    """The seed of each of a photo's ``count`` faces: the first 63 bits of SHA-256 over the run's seed, the
    photo's key and the face's index, so that a face's noise depends on nothing else."""
    return [
        int.from_bytes(hashlib.sha256(f"{seed}\0{key}\0{index}".encode()).digest()[:8], "big") >> 1
        for index in range(count)
    ]


def restore_faces(
    pipe,
    faces: np.ndarray,
    config: RestoreConfig,
    *,
    seeds: Sequence[int] | None = None,
    progress_callback: ProgressCallback | None = None,
) -> np.ndarray:
    """Restore aligned faces (N, S, S, 3) uint8 -> (N, S, S, 3) uint8, ``max_batch_size`` at a time.

    Without ``seeds``, one generator seeded once and drawn in order (as the release reuses one generator across
    batches); with ``seeds`` (one per face), each face draws its noise from a generator of its own.

    Every choice of this run travels with its pipeline calls (the scheduler too), and nothing is set on
    ``pipe``: threads may share one pipeline, each restoring with its own settings.
    """
    from .pipeline.pipeline_authface_sdxl import seeded_generator

    device = pipe.execution_device
    if seeds is None:
        generator = seeded_generator(config.seed if config.seed is not None else draw_seed(), device)
    elif len(seeds) != len(faces):
        raise ValueError(f"seeds must give one seed per face: {len(seeds)} seeds for {len(faces)} faces")
    restored = []
    for start in range(0, len(faces), config.max_batch_size):
        batch = faces[start : start + config.max_batch_size]
        if seeds is not None:
            generator = [seeded_generator(seed, device) for seed in seeds[start : start + len(batch)]]
        callback = _step_callback(progress_callback, config, start, len(faces))
        output = pipe(
            batch,
            prompt=config.prompt,
            negative_prompt=config.negative_prompt,
            num_inference_steps=config.num_inference_steps,
            fidelity=config.fidelity,
            guidance_scale=config.guidance_scale,
            scheduler=config.scheduler,
            color_fix=config.color_fix,
            generator=generator,
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["denoised"] if callback else ["latents"],
        )
        restored.append(output.images)
    return np.concatenate(restored)


def _step_callback(progress_callback: ProgressCallback | None, config: RestoreConfig, face_index: int, num_faces: int):
    """Adapt a ``StepProgress`` callback to diffusers' ``callback_on_step_end``."""
    if progress_callback is None:
        return None
    from .pipeline.pipeline_authface_sdxl import count_denoising_steps, latents_to_rgb_preview

    # From the settings, not from ``pipe.num_timesteps``, which another thread's call may have set since.
    num_steps = count_denoising_steps(config.num_inference_steps, config.fidelity)

    def on_step_end(pipe, step_index: int, timestep, tensors: dict) -> dict:
        step = step_index + 1
        wants_preview = config.preview_every and (step % config.preview_every == 0 or step == num_steps)
        preview = latents_to_rgb_preview(tensors["denoised"][:1])[0] if wants_preview else None
        progress_callback(StepProgress(face_index, num_faces, step, num_steps, preview))
        return {}

    return on_step_end


@dataclass
class PreparedPhoto:
    """A photo made ready for the model: its aligned input faces (N, S, S, 3) uint8 and what pasting their
    restorations back needs. On the aligned path the whole image, resized, is the one face (no box, no affine)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    source: str
    faces: np.ndarray
    boxes: list[FaceBox | None]
    affines: list[np.ndarray] | None
    skipped: list[tuple[FaceBox, str]] = field(default_factory=list)


def prepare_photo(image: np.ndarray | LoadedImage, config: RestoreConfig) -> PreparedPhoto:
    """The CPU work before the model: detect, select and align the faces (module doc), or on the aligned path
    resize the image to the face size.

    Raises:
        NoFaceDetectedError: whole-photo mode found no face to restore (the message suggests aligned mode).
        ValueError: an image that is not (H, W, 3) uint8.
    """
    rgb, alpha, source = _unpack_image(image)
    if config.aligned:
        face = resize_image(rgb, config.face_size, config.face_size)
        return PreparedPhoto(rgb, alpha, source, face[None], [None], None)
    selection = select_restorable_faces(rgb, source, config)
    aligned = [align_face(rgb, face, config.face_size) for face in selection.selected]
    return PreparedPhoto(
        rgb,
        alpha,
        source,
        np.stack([crop.image for crop in aligned]),
        [crop.source.box for crop in aligned],
        [crop.affine for crop in aligned],
        [(face.box, reason) for face, reason in selection.skipped],
    )


def finish_photo(
    prepared: PreparedPhoto, restored: np.ndarray, config: RestoreConfig, *, smoke_test_model: bool
) -> RestoreResult:
    """The CPU work after the model: paste the restored faces (N, S, S, 3) back into the photo upscaled by
    ``config.upscale`` (on the aligned path, resize the one face to the output size), and check each face's
    identity against its input."""
    faces = [
        FaceResult(
            index,
            prepared.boxes[index],
            prepared.faces[index],
            restored[index],
            None if prepared.affines is None else prepared.affines[index],
            _authenticity(prepared.faces[index], restored[index], config),
        )
        for index in range(len(restored))
    ]
    alpha = prepared.alpha
    if prepared.affines is None:
        out_size = config.face_size * config.upscale
        image = resize_image(restored[0], out_size, out_size)
        alpha = None if alpha is None else resize_image(alpha, out_size, out_size)
    else:
        image = paste_faces(prepared.rgb, list(restored), prepared.affines, upscale=config.upscale)
        alpha = None if alpha is None else upscale_image(alpha, config.upscale)
    return RestoreResult(image, alpha, faces, prepared.skipped, config, smoke_test_model)


def select_restorable_faces(rgb: np.ndarray, source: str, config: RestoreConfig) -> FaceSelection:
    """The faces of a whole photo that ``config`` restores (detection and selection, no model): what an app
    checks before queueing a restoration.

    Raises:
        NoFaceDetectedError: none to restore (the message says why and suggests aligned mode).
    """
    height, width = rgb.shape[:2]
    selection = select_faces(
        detect_faces(rgb), (width, height), mode=config.face_selection, min_size=config.min_face_size
    )
    if not selection.selected:
        reasons = "; ".join(reason for _, reason in selection.skipped)
        found = f"{len(selection.skipped)} face(s) found but skipped ({reasons}). " if selection.skipped else ""
        raise NoFaceDetectedError(
            source, f"{found}If the image is already an aligned face crop, use aligned mode (--aligned)."
        )
    return selection


def _authenticity(
    input_face: np.ndarray, restored_face: np.ndarray, config: RestoreConfig
) -> AuthenticityReport | None:
    """The face's authenticity report, or None when ``config.check_identity`` is off."""
    return authenticity_report(input_face, restored_face) if config.check_identity else None


def input_at_output_size(image: np.ndarray | LoadedImage, result: RestoreResult) -> np.ndarray:
    """The input resampled to ``result.image``'s (H, W, 3) size, so a before/after view compares pixels: the
    photo upscaled as the result was, or on the aligned path the face crop resized as the restoration was."""
    if result.config.aligned:
        height, width = result.image.shape[:2]
        return resize_image(result.faces[0].input_face, width, height)
    rgb, _, _ = _unpack_image(image)
    return upscale_image(rgb, result.config.upscale)


def _unpack_image(image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(rgb, alpha, source name) of a LoadedImage or a bare (H, W, 3) uint8 array."""
    if isinstance(image, LoadedImage):
        return image.rgb, image.alpha, image.source
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        described = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array or a LoadedImage, got {described}")
    return image, None, "<image>"
