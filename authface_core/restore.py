"""Restore faces in a photo (or an aligned face crop) with the AuthFace pipeline.

Images are (H, W, 3) RGB uint8 (see ``authface_core.io``). The whole-photo path is
detect -> select -> align (FFHQ recipe) -> restore the selected faces in batches -> paste back
into the photo, which is upscaled by ``upscale`` with Lanczos; pixels away from the faces are
only resampled. Faces are numbered by position, left to right, so a face keeps its number at any
resolution. The aligned path (``aligned=True``) takes a square face crop that is already aligned and
gives it back at its own size (at least the face size) times ``upscale``. A grayscale photo stays
grayscale: the restored faces are reduced to their luma (``pipeline.color_fix.to_luminance``).

:func:`restore_image` is three steps that an app may run apart (a ZeroGPU Space holds the GPU for
the middle one only): :func:`prepare_restoration` (decode-free CPU work: detect, select, align),
:func:`restore_faces` (the model) and :func:`finish_restoration` (identity checks, paste-back).

Fidelity (``RestoreConfig.fidelity``) in [0, 1]: 0 is the released behaviour (start from pure
noise, full generative prior); the sampler runs only the last floor(N * (1 - fidelity)) of its N
steps, starting from the input face's latent noised to that step, so the output stays closer to
the input as fidelity grows; 1 runs no step (the input through the VAE). See
``authface_core.pipeline.pipeline_authface_sdxl`` for the exact definition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np

from .authenticity import AuthenticityReport, authenticity_report
from .candidates import CandidateScore, score_candidates
from .errors import InvalidImageError, NoFaceDetectedError
from .faces.align import align_face
from .faces.blend import MAX_UPSCALE, paste_faces, upscale_image
from .faces.detect import FaceBox, detect_faces
from .faces.select import SELECTION_MODES, FaceSelection, left_to_right, select_faces
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
from .references import Reference, ReferenceCheck, check_faces
from .settings import Range, check_settings, setting

FACE_SELECTION_MODES = SELECTION_MODES  # re-exported for the apps, which import only this module
MIN_FACE_SIZE_PX, MAX_FACE_SIZE_PX = 32, 2048
# What a photo without a detected face is told (each app adds how to switch aligned mode on), and what an aligned
# crop without one is: the model paints a face into whatever it is given.
NO_FACE_HINT = "Aligned mode restores an image that is already an aligned face crop (square, one face filling it)."
NO_FACE_IN_CROP = (
    "No face was found in this aligned crop: the model paints a face into whatever it is given, so check that "
    "this really is a face crop."
)
# Upper bounds this project sets on the settings (the release runs guidance 8).
MAX_GUIDANCE_SCALE = 30.0
MAX_BATCH_SIZE = 64
MAX_CANDIDATES = 8  # best of N: each candidate costs a whole restoration
# The largest integer a browser's number box holds exactly (2**53 - 1), so every seed can be shown and typed back.
MAX_SEED = 2**53 - 1
# An aligned face crop is square; one whose sides differ by up to 2% is taken as square (resizing it to the face
# size then changes its proportions by less than a pixel in 50).
ALIGNED_ASPECT_TOLERANCE = 0.02


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
    candidates: Annotated[int, Range(1, MAX_CANDIDATES)] = setting(
        1,
        "restore each face with this many seeds and keep the one closest to its reference photos (without: to "
        "the input when it is good enough to judge, else the most natural by NIQE)",
    )

    def __post_init__(self):
        check_settings(self)
        if self.face_size % 8:
            raise ValueError(f"face_size must be a multiple of 8, got {self.face_size!r}")

    @property
    def denoising_steps(self) -> int:
        """The steps a restoration runs: the last floor(N * (1 - fidelity)) of the N scheduled (module doc)."""
        from .pipeline.pipeline_authface_sdxl import count_denoising_steps

        return count_denoising_steps(self.num_inference_steps, self.fidelity)


# The released settings, and this project's fast path: a multistep solver at 20 steps instead of 50 DDPM steps.
RELEASED_PRESET = RestoreConfig()
FAST_PRESET = RestoreConfig(scheduler="dpmpp", num_inference_steps=20)
PRESETS = {"released": RELEASED_PRESET, "fast": FAST_PRESET}


@dataclass(frozen=True)
class StepProgress:
    """One denoising step done. Faces of a batch advance together: ``face_index`` is the first face of
    the batch and ``preview`` (h, w, 3) uint8 (1/8 of the face size) shows that face, every
    ``preview_every`` steps and at the last step, else None. With best of N the model restores each face
    ``candidates`` times: the indices then count candidates, ``num_faces`` of them in all."""

    face_index: int
    num_faces: int
    step: int
    num_steps: int
    preview: np.ndarray | None
    candidates: int = 1


@dataclass
class FaceResult:
    """One restored face: its box in the photo (None on the aligned path), its aligned input and output
    crops (S, S, 3) uint8, the photo -> crop affine (None on the aligned path), the authenticity report, the
    verdict against the reference photos (None without references) and, with ``candidates`` > 1, every
    candidate's scores and crops (K, S, S, 3)."""

    index: int
    box: FaceBox | None
    input_face: np.ndarray
    restored_face: np.ndarray
    affine: np.ndarray | None
    authenticity: AuthenticityReport | None
    reference_check: ReferenceCheck | None = None
    candidates: list[CandidateScore] = field(default_factory=list)
    candidate_faces: np.ndarray | None = None


@dataclass
class RestoreResult:
    """The restored photo (H*upscale, W*upscale, 3) uint8, its alpha if any, the faces restored (numbered left
    to right), the faces skipped with the reason, the settings used (with the seed actually drawn), whether the
    model was the tiny smoke-test model (then the output is not a restoration), whether the photo was grayscale
    (then so is the result) and notes for the person who asked (what to look at twice)."""

    image: np.ndarray
    alpha: np.ndarray | None
    faces: list[FaceResult]
    skipped: list[tuple[FaceBox, str]] = field(default_factory=list)
    config: RestoreConfig = field(default_factory=RestoreConfig)
    smoke_test_model: bool = False
    grayscale: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class PreparedPhoto:
    """Everything of a restoration but the model's work, from :func:`prepare_restoration`.

    Args:
        rgb, alpha, source: the photo (H, W, 3) uint8, its alpha plane or None, and its name for messages.
        config: the settings, with the seed drawn when none was given.
        faces: the aligned crops to restore, (N, S, S, 3) uint8, numbered left to right.
        boxes: each face's box in the photo (None on the aligned path).
        affines: each face's photo -> crop affine (None on the aligned path).
        skipped: the detected faces left out, with the reason.
        grayscale: the photo has no colour (the result is kept grayscale).
        notes: what the person who asked should know before trusting the result.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    source: str
    config: RestoreConfig
    faces: np.ndarray
    boxes: list[FaceBox | None]
    affines: list[np.ndarray | None]
    skipped: list[tuple[FaceBox, str]] = field(default_factory=list)
    grayscale: bool = False
    notes: list[str] = field(default_factory=list)


ProgressCallback = Callable[[StepProgress], None]


def describe_progress(step: StepProgress, batch_size: int, elapsed_s: float | None = None) -> str:
    """'Faces 1-4 of 6: step 12 of 50', where ``batch_size`` is the ``max_batch_size`` the faces ran with; with
    best of N, 'Candidates 1-4 of 6 (2 faces x 3): ...'; given the seconds since the model started,
    '..., 0:23 elapsed, about 0:40 left'."""
    last = min(step.face_index + batch_size, step.num_faces)
    noun = "Face" if step.candidates == 1 else "Candidate"
    items = f"{noun} {last}" if last == step.face_index + 1 else f"{noun}s {step.face_index + 1}-{last}"
    text = f"{items} of {step.num_faces}"
    if step.candidates > 1:
        faces = step.num_faces // step.candidates
        text += f" ({faces} face{'s' if faces > 1 else ''} x {step.candidates})"
    text += f": step {step.step} of {step.num_steps}"
    if elapsed_s is None:
        return text
    left = estimate_seconds_left(step, batch_size, elapsed_s)
    return f"{text}, {format_duration(elapsed_s)} elapsed" + (
        f", about {format_duration(left)} left" if left is not None else ""
    )


def estimate_seconds_left(step: StepProgress, batch_size: int, elapsed_s: float) -> float | None:
    """Seconds until the model's last step, at the pace so far (every batch runs the same steps); None before
    the first step."""
    batches = math.ceil(step.num_faces / batch_size)
    done = step.face_index // batch_size * step.num_steps + step.step
    if done <= 0:
        return None
    return elapsed_s / done * (batches * step.num_steps - done)


def format_duration(seconds: float) -> str:
    """'0:07', '12:34', '1:02:03'."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def draw_seed() -> int:
    """A fresh seed of 32 bits: exact in a browser's number box (53 bits), so a shown seed reproduces the run."""
    return secrets.randbits(32)


def restore_image(
    image: np.ndarray | LoadedImage,
    pipe,
    config: RestoreConfig = RestoreConfig(),
    *,
    noise_key: str | None = None,
    references: Sequence[Reference] = (),
    progress_callback: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore the selected faces of a photo, or one aligned face when ``config.aligned``.

    ``noise_key`` names the photo within a larger run (its relative file name, or a dataset id): each face then
    draws its noise from its own generator seeded by :func:`face_seeds`, so an archive restores a photo the same
    whatever order, batch partners or process it gets. Without it, one generator seeded by ``config.seed`` serves
    the faces in order, as the release does; with ``config.candidates`` > 1 every candidate needs a seed of its
    own, so the faces' seeds then come from :func:`face_seeds` with the key "".

    ``references`` (``authface_core.references``) give each face a verdict against photos of the person, and
    rank the candidates.

    Raises:
        NoFaceDetectedError: whole-photo mode found no face to restore (the message suggests aligned mode).
        InvalidImageError: aligned mode given an image that is not square.
        ValueError: an image that is not (H, W, 3) uint8.
    """
    prepared = prepare_restoration(image, config)
    config = prepared.config  # with the seed drawn
    faces, seeds = model_inputs(prepared, noise_key)
    restored = restore_faces(pipe, faces, config, seeds=seeds, progress_callback=progress_callback)
    return finish_restoration(
        prepared, restored, smoke_test_model=pipe.is_smoke_test_model, references=references, seeds=seeds
    )


def model_inputs(prepared: PreparedPhoto, noise_key: str | None = None) -> tuple[np.ndarray, list[int] | None]:
    """What the model restores for a prepared photo: its faces, each repeated ``candidates`` times in a row, and a
    seed per row (:func:`face_seeds` with ``noise_key``, then :func:`candidate_seeds`); the seeds are None (one
    generator in order, as released) for one candidate without a noise key."""
    config = prepared.config
    per_face = config.candidates
    if per_face == 1 and noise_key is None:
        return prepared.faces, None
    face_level = face_seeds(config.seed, noise_key or "", len(prepared.faces))
    seeds = [seed for face in face_level for seed in candidate_seeds(face, per_face)]
    return np.repeat(prepared.faces, per_face, axis=0), seeds


def face_seeds(seed: int, key: str, count: int) -> list[int]:
    """The seed of each of a photo's ``count`` faces: the first 63 bits of SHA-256 over the run's seed, the
    photo's key and the face's index, so that a face's noise depends on nothing else."""
    return [
        int.from_bytes(hashlib.sha256(f"{seed}\0{key}\0{index}".encode()).digest()[:8], "big") >> 1
        for index in range(count)
    ]


def candidate_seeds(seed: int, count: int) -> list[int]:
    """The seeds of a face's ``count`` candidates: its own seed first (one candidate restores as without best of
    N), then the first 63 bits of SHA-256 over the seed and the candidate's number."""
    return [seed] + [
        int.from_bytes(hashlib.sha256(f"{seed}\0candidate\0{index}".encode()).digest()[:8], "big") >> 1
        for index in range(1, count)
    ]


def prepare_restoration(image: np.ndarray | LoadedImage, config: RestoreConfig) -> PreparedPhoto:
    """The work before the model, on the CPU: draw the seed, then find, select and align the faces (numbered
    left to right), or take the aligned crop; note a grayscale photo, and an aligned crop without a face.

    Raises: as :func:`restore_image`.
    """
    from .pipeline.color_fix import is_grayscale

    rgb, alpha, source = _unpack_image(image)
    if config.seed is None:
        config = dataclasses.replace(config, seed=draw_seed())
    grayscale = is_grayscale(rgb)
    if config.aligned:
        check_aligned_crop(rgb, source)
        face = resize_image(rgb, config.face_size, config.face_size)
        notes = [] if detect_faces(rgb) else [NO_FACE_IN_CROP]
        return PreparedPhoto(rgb, alpha, source, config, face[None], [None], [None], [], grayscale, notes)
    selection = select_restorable_faces(rgb, source, config)
    aligned = [align_face(rgb, face, config.face_size) for face in selection.selected]
    return PreparedPhoto(
        rgb,
        alpha,
        source,
        config,
        faces=np.stack([crop.image for crop in aligned]),
        boxes=[crop.source.box for crop in aligned],
        affines=[crop.affine for crop in aligned],
        skipped=[(face.box, reason) for face, reason in selection.skipped],
        grayscale=grayscale,
    )


def finish_restoration(
    prepared: PreparedPhoto,
    restored: np.ndarray,
    *,
    smoke_test_model: bool,
    references: Sequence[Reference] = (),
    seeds: Sequence[int] | None = None,
    chosen: Sequence[int] | None = None,
) -> RestoreResult:
    """The work after the model, on the CPU: ``restored`` (N, S, S, 3) uint8 (the faces of ``prepared``, in
    order) reduced to luma for a grayscale photo, checked against their inputs (and ``references``) and put back
    into the photo (or, on the aligned path, resized to the output size).

    With ``candidates`` K > 1, ``restored`` is (N * K, S, S, 3), each face's candidates in a row (as
    :func:`model_inputs` asks for them; ``seeds``: theirs): each face keeps the best
    (``authface_core.candidates``), or the one ``chosen`` names (one index per face: what a visitor picked).
    """
    from .pipeline.color_fix import to_luminance

    count, size, per_face = len(prepared.faces), prepared.faces.shape[1:], prepared.config.candidates
    if restored.shape != (count * per_face, *size):
        raise ValueError(f"expected restored faces of shape {(count * per_face, *size)}, got {restored.shape}")
    config = prepared.config
    if prepared.grayscale:
        restored = to_luminance(restored)
    candidates = [None] * count
    if per_face > 1:
        candidates = restored.reshape(count, per_face, *size)
        seeds = None if seeds is None else np.reshape(seeds, (count, per_face)).tolist()
    scores = _candidate_scores(prepared.faces, candidates, references, seeds, chosen)
    if per_face > 1:
        restored = np.stack([faces[_chosen_index(face)] for faces, face in zip(candidates, scores, strict=True)])
    checks = _reference_checks(restored, references)
    faces = [
        FaceResult(
            i,
            box,
            face,
            restored[i],
            affine,
            _authenticity(face, restored[i], config),
            reference_check=checks[i],
            candidates=scores[i],
            candidate_faces=candidates[i],
        )
        for i, (face, box, affine) in enumerate(zip(prepared.faces, prepared.boxes, prepared.affines, strict=True))
    ]
    width, height = output_size(prepared.rgb.shape[1::-1], config)
    if config.aligned:
        image = resize_image(restored[0], width, height)
        alpha = None if prepared.alpha is None else resize_image(prepared.alpha, width, height)
    else:
        image = paste_faces(prepared.rgb, list(restored), prepared.affines, upscale=config.upscale)
        alpha = None if prepared.alpha is None else upscale_image(prepared.alpha, config.upscale)
    if prepared.grayscale:
        image = to_luminance(image)  # exactly gray, also where the photo was gray only within the tolerance
    return RestoreResult(
        image=image,
        alpha=alpha,
        faces=faces,
        skipped=prepared.skipped,
        config=config,
        smoke_test_model=smoke_test_model,
        grayscale=prepared.grayscale,
        notes=prepared.notes,
    )


def _candidate_scores(
    inputs: np.ndarray,
    restored: np.ndarray | list[None],
    references: Sequence[Reference],
    seeds: Sequence[Sequence[int]] | None,
    chosen: Sequence[int] | None,
) -> list[list[CandidateScore]]:
    """Each face's candidate scores, (N, K, S, S, 3) candidates, the kept one marked (``chosen`` overrides); no
    scores without candidates (``restored`` None per face)."""
    if not isinstance(restored, np.ndarray):
        return [[] for _ in inputs]
    if chosen is not None and len(chosen) != len(inputs):
        raise ValueError(f"chosen must name one candidate per face: {len(chosen)} for {len(inputs)} faces")
    scores = []
    for index, (face, candidates) in enumerate(zip(inputs, restored, strict=True)):
        face_scores = score_candidates(
            face, candidates, references=references, seeds=None if seeds is None else seeds[index]
        )
        if chosen is not None:
            if not 0 <= chosen[index] < len(candidates):
                raise ValueError(f"face {index} has {len(candidates)} candidates, got candidate {chosen[index]}")
            face_scores = [dataclasses.replace(s, chosen=s.index == chosen[index]) for s in face_scores]
        scores.append(face_scores)
    return scores


def _chosen_index(scores: list[CandidateScore]) -> int:
    return next(score.index for score in scores if score.chosen)


def _reference_checks(restored: np.ndarray, references: Sequence[Reference]) -> list[ReferenceCheck | None]:
    """Each restored face's verdict against the references (None each without references)."""
    if not references:
        return [None] * len(restored)
    from .faces.compare import measure_face, to_eval_size
    from .niqe import niqe_or_none

    return check_faces(
        [measure_face(face).descriptor for face in restored],
        references,
        niqes=[niqe_or_none(to_eval_size(face)) for face in restored],
    )


def output_size(input_size: tuple[int, int], config: RestoreConfig) -> tuple[int, int]:
    """(width, height) of the result for an input of ``input_size`` (width, height): the photo times ``upscale``,
    or on the aligned path the crop's side, at least the face size, times ``upscale``."""
    width, height = input_size
    if config.aligned:
        side = max(width, height, config.face_size) * config.upscale
        return side, side
    return width * config.upscale, height * config.upscale


def largest_upscale(input_size: tuple[int, int], config: RestoreConfig, max_pixels: int) -> int:
    """The largest ``upscale`` whose output holds at most ``max_pixels`` (0 when even 1 does not)."""
    fits = [
        factor
        for factor in range(1, MAX_UPSCALE + 1)
        if math.prod(output_size(input_size, dataclasses.replace(config, upscale=factor))) <= max_pixels
    ]
    return max(fits, default=0)


def check_output_size(input_size: tuple[int, int], config: RestoreConfig, max_pixels: int) -> None:
    """Refuse (``ValueError`` starting with 'upscale') a result over ``max_pixels``, saying which upscale fits:
    what a server checks before any work, as a 60 MP photo at x4 would be a 960 MP output."""
    width, height = output_size(input_size, config)
    if width * height <= max_pixels:
        return
    fits = largest_upscale(input_size, config, max_pixels)
    advice = (
        f"the largest upscale that fits is {fits}"
        if fits
        else "even upscale 1 does not fit: use a smaller photo here, or the command line"
    )
    raise ValueError(
        f"upscale {config.upscale} would make a {width}x{height} result ({width * height:,} pixels), over this "
        f"server's limit of {max_pixels:,} pixels ({max_pixels / 1e6:g} MP); {advice}"
    )


def check_aligned_crop(rgb: np.ndarray, source: str) -> None:
    """Refuse (``InvalidImageError``) an aligned crop that is not square: resizing it to the face size would
    squash the face."""
    height, width = rgb.shape[:2]
    if abs(width - height) > ALIGNED_ASPECT_TOLERANCE * max(width, height):
        raise InvalidImageError(
            source,
            f"an aligned face crop is square, this image is {width}x{height}; restore it as a whole photo "
            "(not aligned), which finds and aligns the faces itself",
        )


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
        progress_callback(StepProgress(face_index, num_faces, step, num_steps, preview, config.candidates))
        return {}

    return on_step_end


def select_restorable_faces(rgb: np.ndarray, source: str, config: RestoreConfig) -> FaceSelection:
    """The faces of a whole photo that ``config`` restores (detection and selection, no model), numbered by
    position: sorted left to right by their centres (then top to bottom), which a resize does not change. What
    an app checks before queueing a restoration.

    Raises:
        NoFaceDetectedError: none to restore (the message says why, and that aligned mode takes face crops).
    """
    height, width = rgb.shape[:2]
    selection = select_faces(
        detect_faces(rgb), (width, height), mode=config.face_selection, min_size=config.min_face_size
    )
    if not selection.selected:
        reasons = "; ".join(reason for _, reason in selection.skipped)
        found = f"{len(selection.skipped)} face(s) found but skipped ({reasons}). " if selection.skipped else ""
        raise NoFaceDetectedError(source, f"{found}{NO_FACE_HINT}")
    return dataclasses.replace(selection, selected=left_to_right(selection.selected))


def _authenticity(
    input_face: np.ndarray, restored_face: np.ndarray, config: RestoreConfig
) -> AuthenticityReport | None:
    """The face's authenticity report, or None when ``config.check_identity`` is off."""
    return authenticity_report(input_face, restored_face) if config.check_identity else None


def comparison_images(
    image: np.ndarray | LoadedImage, result: RestoreResult, max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(before, after): the input and the result at one (H, W, 3) size, so a before/after view compares pixels:
    the result's size, or within ``max_side`` (a screen's worth, fast to send) keeping its proportions."""
    rgb, _, _ = _unpack_image(image)
    height, width = result.image.shape[:2]
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    after = result.image if scale == 1.0 else resize_image(result.image, *size)
    return resize_image(rgb, *size), after


def _unpack_image(image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(rgb, alpha, source name) of a LoadedImage or a bare (H, W, 3) uint8 array."""
    if isinstance(image, LoadedImage):
        return image.rgb, image.alpha, image.source
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        described = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array or a LoadedImage, got {described}")
    return image, None, "<image>"
