"""The restoration demo: upload a face photo, restore it with AuthFace, compare, check identity, download.

Thin on purpose (STYLE.md, section 3): every decision is taken in ``authface_core``. The settings
controls are made from :class:`~authface_core.restore.RestoreConfig`'s fields (range, step, choices,
help), one per field except the server's own (:data:`SERVER_SETTINGS`), and reach the callback by
field name, so a new restore setting appears here without an edit. Callbacks return
``{component: value}``; :func:`show_errors` turns :class:`~authface_core.errors.AuthFaceError` into
``gr.Error`` in one place. The cheap checks (a model, a photo that decodes within the size limits,
a result within :data:`MAX_OUTPUT_PIXELS`, valid settings, a face in whole-photo mode) run in
:func:`check_request`, Gradio's validator, before a request joins the one-at-a-time GPU queue.

A restoration is three steps (``authface_core.restore``): preparing the faces, the model, finishing. Only
the model's step goes through ``gpu`` (``spaces.GPU`` on a ZeroGPU Space, see ``demo/__main__.py``), so
detection, identity checks, paste-back and PNG writing never hold the GPU. The screen gets screen-sized
lossless images; the download is the full-resolution PNG.

Read top-down: plain functions, then :func:`build_demo` (the Blocks, then the events). The page's
CSS and script are ``app.css`` and ``app.js`` beside this file. Nothing launches on import;
``authface-demo`` (``demo/__main__.py``) and ``python app.py`` do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from authface_core.errors import AuthFaceError, NoFaceDetectedError
from authface_core.faces.blend import upscale_image
from authface_core.faces.draw import draw_numbered_boxes
from authface_core.io import load_image, save_image
from authface_core.model_config import ModelConfig
from authface_core.references import MAX_REFERENCES, Reference, embed_reference
from authface_core.restore import (
    PRESETS,
    RELEASED_PRESET,
    PreparedPhoto,
    RestoreConfig,
    RestoreResult,
    StepProgress,
    check_aligned_crop,
    check_output_size,
    comparison_images,
    describe_progress,
    finish_restoration,
    format_duration,
    model_inputs,
    prepare_restoration,
    restore_faces,
    select_restorable_faces,
)
from authface_core.settings import SettingSpec, describe_settings, settings_from_dict
from demo.examples import EXAMPLES, write_examples

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
APP_CSS = HERE / "app.css"
SCROLL_TO_PROGRESS_JS = (HERE / "app.js").read_text()

API_NAME = "restore"
# Settings the server fixes (memory and time per request), so no visitor can raise them.
SERVER_SETTINGS = ("face_size", "preview_every", "max_batch_size")
# Shown above the fold; the other settings go under "More settings".
MAIN_SETTINGS = ("aligned", "num_inference_steps", "fidelity", "upscale")
# Settings that describe the photo rather than how to restore it: a preset leaves them alone.
PHOTO_SETTINGS = ("aligned", "upscale")
# Friendlier labels than the field names; any other setting is labelled from its name.
LABELS = {
    "aligned": "Aligned face crop",
    "num_inference_steps": "Steps",
    "guidance_scale": "Guidance",
    "face_selection": "Faces to restore",
    "upscale": "Output upscale",
}
PRESET_LABELS = {"released": "Released defaults", "fast": "Fast preset"}
NO_FACE_HINT = "Tick 'Aligned face crop' if the photo is one."
NOT_FINISHED = "Stopped before the end: nothing was restored."
MODEL_MISSING = "The model is not available on this server (the page says why), so nothing can be restored."
REPORT_HEADERS = ["face", "identity similarity", "landmark shift (px)", "verdict", "note"]
# The photo box's height in pixels: small enough that Restore shows without scrolling on a 900 px high screen.
PHOTO_BOX_HEIGHT = 320
PREVIEW_ZOOM = 4  # the pipeline's previews are 1/8 of the face size: show them at half of it
# A slider for numbers with at most this many stops; a number box beyond (seeds, pixel counts).
MAX_SLIDER_STOPS = 1000
# The largest result this server makes, in pixels: ~150 MB of RGB and a PNG of up to ~100 MB (a 12.5 MP photo at
# x2, a 3 MP one at x4). Asking for more is refused before any work, with the largest upscale that fits.
MAX_OUTPUT_PIXELS = 50_000_000
# The before/after view and the numbered faces are sent at most this many pixels on a side, as PNG: a screenful,
# lossless; the download is the full-resolution PNG.
SCREEN_MAX_SIDE = 2048
# The download's PNG compression: level 1 writes a 47 MP result in 3 s instead of 19 s, for a third more bytes.
DOWNLOAD_PNG_COMPRESS_LEVEL = 1
# Uploads and results (Gradio's cache) are deleted this long after they were made, checked this often.
KEEP_FILES_S, SWEEP_FILES_S = 3600, 600
# Uploads above this are refused by Gradio before they are stored: a 60 MP JPEG is about 25 MB, an 8K PNG
# can reach 100 MB (restore those with the command line).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD_BYTES, "show_error": True, "css_paths": [APP_CSS]}
# ZeroGPU time per face and denoising step: SDXL's UNet plus the ControlNet at 512 px with guidance (two passes), fp16.
# An estimate with a margin (about twice bench/gpu_speed.py's expected H100 figure); the measured figure is owed.
ZERO_GPU_S_PER_FACE_STEP = 0.25
# Moving the weights onto the GPU, the VAE decode and the colour fix of a call.
ZERO_GPU_SETUP_S = 15
ZERO_GPU_MIN_S, ZERO_GPU_MAX_S = 20, 300
# The progress line is rewritten at most this often (a preview image goes with it whenever there is one).
STATUS_EVERY_S = 0.5

INTRO = (
    "# AuthFace Studio\nRestore blurry, noisy or old face photos with the AuthFace diffusion prior, then check "
    "that the result is still the same person. Pick an example or upload a photo, then press **Restore**."
)
SMOKE_TEST_NOTICE = (
    "**Smoke-test model.** This page runs `tiny`, a miniature model with *random weights* built only "
    "to test the software. Its outputs are noise, not restorations, and say nothing about AuthFace's "
    "quality. Start the app with `--model Ethanliang99/AuthFace` (or a local checkpoint folder) for "
    "real results."
)
ABOUT = f"""
**AuthFace**: *AuthFace: Towards Authentic Blind Face Restoration with Face-oriented Generative Diffusion Prior*,
Guoqiang Liang, Qingnan Fan, Bingtao Fu, Jinwei Chen, Hong Gu and Lin Wang, ACM MM 2025
([arXiv:2410.09864](https://arxiv.org/abs/2410.09864), [the authors' code](https://github.com/EthanLiang99/AuthFace)).
This app is AuthFace Studio (code under the Apache-2.0 licence); the AuthFace weights are for
**non-commercial use** only, by their authors' terms.

**Your photos.** Uploads and results stay on this server only to be shown and downloaded: they are deleted
{KEEP_FILES_S // 3600} hour after they were made (checked every {SWEEP_FILES_S // 60} minutes), and the app keeps
no other copy. The examples are scikit-image's public-domain astronaut photo, degraded by this project.
"""
CITATION = """```bibtex
@inproceedings{liang2025authface,
  title     = {AuthFace: Towards Authentic Blind Face Restoration with Face-oriented Generative Diffusion Prior},
  author    = {Liang, Guoqiang and Fan, Qingnan and Fu, Bingtao and Chen, Jinwei and Gu, Hong and Wang, Lin},
  booktitle = {Proceedings of the ACM International Conference on Multimedia (ACM MM)},
  year      = {2025},
  note      = {arXiv:2410.09864}
}
```"""


class _RestoreCancelled(Exception):
    """Raised inside the worker at the next step once the page that asked for the restoration is gone."""


def load_model(config: ModelConfig) -> tuple[object | None, str]:
    """Load the pipeline once at start-up; return it (or None) and the notice the page shows about it.

    Any failure is caught so that the app still starts and explains itself instead of crashing.
    """
    model = config.resolved_model
    try:
        pipe = config.load()
    except AuthFaceError as error:  # the loader's message says what was tried and how to fix it
        logger.error("could not load model %s: %s", model, error)
        return None, f"**Model not available.** {error}"
    except Exception as error:  # noqa: BLE001 - the page must start and say why, whatever went wrong
        logger.exception("could not load model %s", model)
        return None, f"**Model not available.** {type(error).__name__}: {error}"
    return pipe, SMOKE_TEST_NOTICE if pipe.is_smoke_test_model else ""


def gradio_error(error: Exception) -> gr.Error:
    """The page's message for an error of ours, shown until closed: its text, plus what to do here for a photo
    without a face."""
    hint = f" {NO_FACE_HINT}" if isinstance(error, NoFaceDetectedError) else ""
    return gr.Error(f"{error}{hint}", duration=None, print_exception=False)


def show_errors(callback: Callable) -> Callable:
    """Decorator for callbacks (plain or generators): an ``AuthFaceError`` or a setting's ``ValueError`` is shown
    on the page as ``gr.Error`` with its message; anything else stays a server error (logged)."""
    if inspect.isgeneratorfunction(callback):

        @functools.wraps(callback)
        def stream(*args, **kwargs):
            try:
                yield from callback(*args, **kwargs)
            except (AuthFaceError, ValueError) as error:
                raise gradio_error(error) from error

        return stream

    @functools.wraps(callback)
    def call(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except (AuthFaceError, ValueError) as error:
            raise gradio_error(error) from error

    return call


def setting_widget(spec: SettingSpec, value) -> gr.components.Component:
    """The control for one setting, made from its description: choices, a checkbox, a slider over its range
    and step, a number box, or a text box; its help is the control's info line. Whole-number settings are
    typed integers in the API (``precision=0``)."""
    options = {"label": LABELS.get(spec.name, spec.name.replace("_", " ").capitalize()), "info": spec.help}
    options |= {"value": value, "elem_id": spec.name}
    if spec.choices is not None:
        return (gr.Radio if len(spec.choices) <= 3 else gr.Dropdown)(list(spec.choices), **options)
    if spec.kind is bool:
        return gr.Checkbox(**options)
    if spec.kind in (int, float):
        low, high = (None, None) if spec.range is None else (spec.range.low, spec.range.high)
        step = (spec.range.step if spec.range else None) or (
            1 if spec.kind is int else (high - low) / 100 if high else 1
        )
        precision = 0 if spec.kind is int else None
        if low is not None and high is not None and (high - low) / step <= MAX_SLIDER_STOPS:
            return gr.Slider(low, high, step=step, precision=precision, **options)
        return gr.Number(minimum=low, maximum=high, precision=precision, **options)
    return gr.Textbox(lines=3 if len(str(value)) > 60 else 1, **options)


def api_description(specs: dict[str, SettingSpec]) -> str:
    """The /restore endpoint's description: its parameters with their types, ranges and help, from the settings."""
    lines = [
        "Restore the faces of a photo. Parameters: image (the photo file); randomize_seed (true: draw a fresh "
        f"seed, returned); references (optional: up to {MAX_REFERENCES} photo files of the person, for the verdict "
        "and to rank candidates); then each restoration setting by name (those left out keep the page's defaults):"
    ]
    for spec in specs.values():
        if spec.choices is not None:
            allowed = f"one of {', '.join(map(str, spec.choices))}"
        else:
            kind = {int: "integer", float: "number", bool: "true or false", str: "text"}.get(spec.kind, "value")
            allowed = f"{kind} {spec.range.describe()}" if spec.range is not None else kind
        lines.append(f"- {spec.name}: {allowed}{' or null' if spec.optional else ''}. {spec.help}.")
    lines.append(f"The result may hold at most {MAX_OUTPUT_PIXELS:,} pixels (a larger upscale is refused).")
    return "\n".join(lines)


def request_config(randomize_seed: bool, settings: dict) -> RestoreConfig:
    """The RestoreConfig the page asks for: its controls by field name, the server's own settings, and no seed
    (a fresh one drawn) when "Random seed" is ticked. Whole numbers sent as floats are taken as integers."""
    specs = describe_settings(RestoreConfig)
    values = {name: _as_setting(specs[name], value) for name, value in settings.items() if name in specs}
    if randomize_seed:
        values["seed"] = None
    unknown = sorted(set(settings) - set(specs))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
    return settings_from_dict(RestoreConfig, values, source="page")


def _as_setting(spec: SettingSpec, value):
    if spec.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_request(image, randomize_seed, references, pipe, **settings) -> list[dict]:
    """The cheap checks, before the GPU queue: one ``gr.validate`` per input of the restore event (the
    photo, "Random seed", the reference photos, then each setting), the problem shown at the control it
    concerns."""
    verdicts = {name: gr.validate(True, "") for name in ("image", "randomize_seed", "references")}
    verdicts |= {name: gr.validate(True, "") for name in settings}
    try:
        for upload in check_reference_uploads(references):
            load_image(upload_path(upload), name=upload_name(upload))
    except (AuthFaceError, ValueError) as error:
        verdicts["references"] = gr.validate(False, gradio_error(error).message)
    try:
        config = request_config(randomize_seed, settings)
        if pipe is None:
            raise ValueError(MODEL_MISSING)
        loaded = load_image(upload_path(image), name=upload_name(image))
        check_output_size(loaded.size, config, MAX_OUTPUT_PIXELS)
        if config.aligned:
            check_aligned_crop(loaded.rgb, loaded.source)
        else:
            select_restorable_faces(loaded.rgb, loaded.source, config)
    except (AuthFaceError, ValueError) as error:
        concerned = next((name for name in settings if str(error).startswith(f"{name} ")), "image")
        verdicts[concerned] = gr.validate(False, gradio_error(error).message)
    return list(verdicts.values())


def upload_path(image) -> str:
    """The file Gradio stored for the upload. Gradio refuses, before any callback, a payload naming a file outside
    its upload folder, ``preprocess=False`` or not (tests/demo: a path the client names is never read)."""
    if not image or not isinstance(image, dict) or not image.get("path"):
        raise ValueError("Upload a photo first (drop a file on the image box, paste one, or use the webcam).")
    return image["path"]


def upload_name(image) -> str:
    return image.get("orig_name") or Path(image["path"]).name


def check_reference_uploads(references) -> list:
    """The reference uploads (a list of Gradio file payloads; none is fine), refused beyond
    :data:`~authface_core.references.MAX_REFERENCES`."""
    references = references or []
    if len(references) > MAX_REFERENCES:
        raise ValueError(f"{len(references)} reference photos: at most {MAX_REFERENCES}")
    return references


def load_reference_uploads(references) -> list[Reference]:
    """The reference photos' faces (the largest of each), all of one person: the person in the photo restored."""
    return [
        embed_reference(load_image(upload_path(upload), name=upload_name(upload)))
        for upload in check_reference_uploads(references)
    ]


def preset_values(preset: RestoreConfig, widgets: dict) -> dict:
    """``{control: value}`` setting every control to the preset, except the ones describing the photo."""
    return {widget: getattr(preset, name) for name, widget in widgets.items() if name not in PHOTO_SETTINGS}


def stream_restore_faces(
    pipe, faces: np.ndarray, config: RestoreConfig, seeds: list[int] | None = None
) -> Iterator[StepProgress | np.ndarray]:
    """Yield each :class:`StepProgress` of :func:`restore_faces` (``seeds``: one per face, or None for one
    generator), then the restored faces (N, S, S, 3) uint8.

    Gradio streams what a generator yields, while ``restore_faces`` reports through a callback, so the
    model runs in a worker thread. If the page goes away (the generator is closed), the worker stops at
    its next step, and this returns only once it has, so the queue's one-job-at-a-time limit really holds
    for the GPU. Everything yielded pickles (a ZeroGPU worker sends it back to the app's process).
    """
    events: queue.Queue[StepProgress | None] = queue.Queue()
    cancelled = threading.Event()

    def report(step: StepProgress) -> None:
        if cancelled.is_set():
            raise _RestoreCancelled
        events.put(step)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="authface-restore") as worker:
        future = worker.submit(restore_faces, pipe, faces, config, seeds=seeds, progress_callback=report)
        future.add_done_callback(lambda _: events.put(None))
        try:
            while (event := events.get()) is not None:
                yield event
            yield future.result()
        finally:
            cancelled.set()


def report_rows(result: RestoreResult) -> list[list[object]]:
    """One row of the authenticity table per restored face, numbered as on the photo. With reference photos the
    verdict is theirs (it holds at any degradation) and the note gives both checks; else the input's."""
    rows = []
    for face in result.faces:
        report, check = face.authenticity, face.reference_check
        similarity = (
            None if report is None or report.identity_similarity is None else round(report.identity_similarity, 3)
        )
        shift = None if report is None or report.landmark_shift is None else round(report.landmark_shift, 1)
        if check is not None:
            verdict = f"{check.verdict} (references)"
            note = check.message + (f". Against the input: {report.message}" if report is not None else "")
        elif report is not None:
            verdict = f"⚠ {report.verdict}" if report.warning else report.verdict
            note = report.message
        else:
            verdict, note = "not checked", ""
        rows.append([face.index + 1, similarity, shift, verdict, note])
    return rows


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def candidate_gallery(result: RestoreResult) -> list[tuple[np.ndarray, str]]:
    """Every candidate of every face (best of N), captioned with its scores; the kept ones marked."""
    items = []
    for face in result.faces:
        for score, crop in zip(face.candidates, face.candidate_faces if face.candidates else [], strict=True):
            distance = "no face found" if score.distance is None else f"distance {score.distance:.2f}"
            niqe = "" if score.niqe is None else f", NIQE {score.niqe:.1f}"
            kept = " (kept)" if score.chosen else ""
            caption = f"Face {face.index + 1}, candidate {score.index + 1}{kept}: {distance} ({score.basis}){niqe}"
            items.append((crop, caption))
    return items


def candidate_at(result: RestoreResult, gallery_index: int) -> list[int]:
    """The candidates kept per face once the visitor picks the ``gallery_index``-th of :func:`candidate_gallery`."""
    chosen = [next(s.index for s in face.candidates if s.chosen) for face in result.faces]
    position = gallery_index
    for face in result.faces:
        if position < len(face.candidates):
            chosen[face.index] = position
            return chosen
        position -= len(face.candidates)
    raise ValueError(f"there is no candidate {gallery_index + 1}: pick one of the gallery")


def face_gallery(result: RestoreResult) -> list[tuple[np.ndarray, str]]:
    """Each face as one image, input on the left and restoration on the right, (S, 2S, 3) uint8."""
    return [
        (np.concatenate([face.input_face, face.restored_face], axis=1), f"Face {face.index + 1}: before | after")
        for face in result.faces
    ]


def faces_found_image(before: np.ndarray, photo_width: int, result: RestoreResult) -> np.ndarray | None:
    """``before`` (the photo at screen size) with each restored face's box numbered as in the report and the
    skipped faces in gray; None on the aligned path, where the whole crop is the face."""
    if result.config.aligned:
        return None
    return draw_numbered_boxes(
        before,
        [face.box for face in result.faces],
        [box for box, _ in result.skipped],
        scale=before.shape[1] / photo_width,
    )


def run_summary(result: RestoreResult, source: str, seconds: float) -> str:
    """A short account of the run: what was restored, with which settings, how long it took, and what to know."""
    config = result.config
    height, width = result.image.shape[:2]
    steps = config.denoising_steps
    if steps:
        sampling = f"{steps} of {config.num_inference_steps} steps at fidelity {config.fidelity:.2f}"
    else:
        sampling = "no denoising step at fidelity 1: the faces only went through the VAE"
    what = (
        f"the aligned face crop **{source}** (restored at {config.face_size} px)"
        if config.aligned
        else f"{len(result.faces)} face(s) of **{source}**"
    )
    lines = [
        f"Restored {what} → {width}×{height} PNG in {format_duration(seconds)} ({sampling}, guidance "
        f"{config.guidance_scale:g}, scheduler {config.scheduler}, seed {config.seed}).",
    ]
    if result.grayscale:
        lines.append("- Grayscale photo: kept grayscale (the restored faces were reduced to their luminance).")
    lines += [f"- Skipped a face at ({box.left:.0f}, {box.top:.0f}): {reason}" for box, reason in result.skipped]
    lines += [f"- {note}" for note in result.notes]
    if result.smoke_test_model:
        lines.append("\n*Smoke-test model: random weights, the output is not a restoration.*")
    return "\n".join(lines)


@contextlib.contextmanager
def result_folder() -> Iterator[Path]:
    """A folder for one result's download, removed once the callback resumes: Gradio has its own copy by then."""
    folder = Path(tempfile.mkdtemp(prefix="authface-result-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_download(result: RestoreResult, source: str, folder: Path) -> Path:
    """Write the full-resolution result as ``<name>_authface.png`` in ``folder`` (atomically, alpha kept)."""
    path = folder / f"{Path(source).stem}_authface.png"
    save_image(path, result.image, result.alpha, png_compress_level=DOWNLOAD_PNG_COMPRESS_LEVEL)
    return path


@dataclass(frozen=True)
class FinishedRun:
    """A restoration's model output kept for the visitor's session, so that another candidate can be pasted back
    without running the model again (``restore.finish_restoration`` with ``chosen``)."""

    prepared: PreparedPhoto
    restored: np.ndarray
    seeds: list[int] | None
    references: list[Reference]
    loaded: object
    result: RestoreResult | None = None

    def finish(self, smoke_test_model: bool, chosen: list[int] | None = None) -> RestoreResult:
        return finish_restoration(
            self.prepared,
            self.restored,
            smoke_test_model=smoke_test_model,
            references=self.references,
            seeds=self.seeds,
            chosen=chosen,
        )

    def with_result(self, result: RestoreResult) -> FinishedRun:
        return dataclasses.replace(self, result=result)


def build_demo(model: ModelConfig | None = None, *, gpu: Callable[[Callable], Callable] | None = None) -> gr.Blocks:
    """Build the restoration app for ``model`` (default: ``ModelConfig()``, i.e. ``$AUTHFACE_MODEL`` or the release).

    ``gpu`` wraps the model's step, a generator ``diffuse(faces, config)`` (e.g. ``spaces.GPU`` on a ZeroGPU
    Space); None leaves it as is. The model is loaded here, once; when it cannot be, the page still starts,
    says why, and its Restore button is off.
    """
    pipe, model_notice = load_model(model or ModelConfig())
    specs = {name: spec for name, spec in describe_settings(RestoreConfig).items() if name not in SERVER_SETTINGS}

    def diffuse(
        faces: np.ndarray, config: RestoreConfig, seeds: list[int] | None = None
    ) -> Iterator[StepProgress | np.ndarray]:
        """The model's work, and the only step that needs the GPU: its steps as they run, then the faces."""
        yield from stream_restore_faces(pipe, faces, config, seeds)

    diffuse_faces = gpu(diffuse) if gpu is not None else diffuse

    with gr.Blocks(
        title="AuthFace Studio: authentic face restoration", delete_cache=(SWEEP_FILES_S, KEEP_FILES_S)
    ) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(model_notice, visible=bool(model_notice), elem_id="model-notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320, elem_id="request"):
                with gr.Row(equal_height=True):  # side by side: Restore stays above the fold of a 900 px screen
                    image = gr.Image(
                        label="Photo",
                        type="filepath",
                        sources=["upload", "clipboard", "webcam"],
                        height=PHOTO_BOX_HEIGHT,
                        scale=3,
                        elem_id="input-image",
                    )
                    reference_upload = gr.File(
                        label=f"Other photos of the same person (optional, up to {MAX_REFERENCES})",
                        file_count="multiple",
                        file_types=["image"],
                        height=PHOTO_BOX_HEIGHT,
                        scale=2,
                        min_width=140,
                        elem_id="references",
                    )
                widgets = {name: setting_widget(specs[name], getattr(RELEASED_PRESET, name)) for name in MAIN_SETTINGS}
                with gr.Row():
                    run = gr.Button(
                        "Restore", variant="primary", interactive=pipe is not None, elem_id="restore-button"
                    )
                    stop = gr.Button("Stop", variant="stop", visible=False, elem_id="stop-button")
                with tempfile.TemporaryDirectory(prefix="authface-examples-") as folder:  # Gradio keeps its copies
                    gr.Examples(
                        [
                            [str(path), example.settings.get("aligned", False), example.settings.get("upscale", 1)]
                            for path, example in zip(write_examples(Path(folder)), EXAMPLES, strict=True)
                        ],
                        inputs=[image, widgets["aligned"], widgets["upscale"]],
                        example_labels=[example.label for example in EXAMPLES],
                        label="Examples: click one, then Restore",
                        elem_id="examples",
                    )
                with gr.Accordion("More settings", open=False):
                    for name, spec in specs.items():
                        if name not in MAIN_SETTINGS:
                            widgets[name] = setting_widget(spec, getattr(RELEASED_PRESET, name))
                    randomize_seed = gr.Checkbox(value=False, label="Random seed", elem_id="randomize-seed")
                    with gr.Row():
                        presets = {
                            name: gr.Button(PRESET_LABELS.get(name, f"{name.capitalize()} preset"), size="sm")
                            for name in PRESETS
                        }
            with gr.Column(scale=2, elem_id="results"):
                status = gr.Markdown(label="Progress", elem_id="status")
                preview = gr.Image(
                    label="Live preview", interactive=False, height=256, visible=False, format="png", elem_id="preview"
                )
                comparison = gr.ImageSlider(
                    label="Before and after", type="numpy", format="png", interactive=False, elem_id="comparison"
                )
                download = gr.File(label="Restored photo, full resolution PNG", interactive=False, elem_id="download")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                report = gr.Dataframe(
                    headers=REPORT_HEADERS,
                    type="array",
                    label="Authenticity report",
                    interactive=False,
                    wrap=True,
                    elem_id="report",
                )
                faces_found = gr.Image(
                    label="Faces found (numbered as in the report)",
                    interactive=False,
                    format="png",
                    elem_id="faces-found",
                )
                gallery = gr.Gallery(
                    label="Faces before and after",
                    columns=1,
                    object_fit="contain",
                    format="png",
                    elem_id="faces",
                )
                candidates = gr.Gallery(
                    label="Candidates (best of N): click one to use it instead",
                    columns=4,
                    object_fit="contain",
                    format="png",
                    allow_preview=False,
                    elem_id="candidates",
                )
        gr.Markdown(ABOUT, elem_id="about")
        with gr.Accordion("Cite AuthFace", open=False):
            gr.Markdown(CITATION, elem_id="citation")
        finished = gr.State(False)
        last_run = gr.State(None)  # what a visitor's pick of another candidate needs: see ``pick_candidate``

        def start_run() -> dict:
            """Restore pressed: the last results leave the screen at once (the checks and the queue come next)."""
            return {
                comparison: None,
                download: None,
                report: gr.Dataframe(value=[], headers=REPORT_HEADERS),
                summary: "",
                faces_found: None,
                gallery: [],
                candidates: [],
                status: "",
                finished: False,
                last_run: None,
            }

        def shown_result(result: RestoreResult, loaded, seconds: float, folder: Path) -> dict:
            """The outputs of a finished restoration (the comparison, the PNG written in ``folder``, the report,
            the faces, the candidates)."""
            flagged = [str(f.index + 1) for f in result.faces if f.authenticity and f.authenticity.warning]
            if flagged:
                gr.Warning(f"Look twice at face {', '.join(flagged)}: see the authenticity report.")
            before, after = comparison_images(loaded, result, SCREEN_MAX_SIDE)
            return {
                comparison: (before, after),  # same size: compares pixels
                faces_found: faces_found_image(before, loaded.size[0], result),
                gallery: face_gallery(result),
                candidates: candidate_gallery(result),
                report: report_rows(result),
                download: str(write_download(result, loaded.source, folder)),
                summary: run_summary(result, loaded.source, seconds),
            }

        @show_errors
        def restore(image, randomize_seed, references=None, progress=gr.Progress(), **settings):
            """Restore the faces of a photo: streams the progress and previews, then the comparison, the numbered
            faces, the report and the full-resolution PNG."""
            started = time.monotonic()
            config = request_config(randomize_seed, settings)
            if pipe is None:
                raise ValueError(MODEL_MISSING)
            loaded = load_image(upload_path(image), name=upload_name(image))
            check_output_size(loaded.size, config, MAX_OUTPUT_PIXELS)
            references_found = load_reference_uploads(references)
            for reference in references_found:
                if not reference.found:
                    gr.Warning(f"Reference {reference.source}: {reference.problem}", duration=None)
            progress(0, desc="Preparing the crop" if config.aligned else "Finding faces")
            yield {  # the run has passed the checks and the queue: Restore waits for it, Stop can end it
                status: "Preparing the crop…" if config.aligned else "Finding faces…",
                preview: gr.Image(value=None, visible=True),
                run: gr.Button(interactive=False),
                stop: gr.Button(visible=True),
            }
            prepared = prepare_restoration(loaded, config)
            for note in prepared.notes:
                gr.Warning(note, duration=None)
            model_started, shown_at, restored = time.monotonic(), 0.0, None
            faces, seeds = model_inputs(prepared)
            for event in diffuse_faces(faces, prepared.config, seeds):
                if not isinstance(event, StepProgress):
                    restored = event
                    continue
                text = describe_progress(event, config.max_batch_size, time.monotonic() - model_started)
                progress((event.step, event.num_steps), desc=text)
                update = {preview: upscale_image(event.preview, PREVIEW_ZOOM)} if event.preview is not None else {}
                if update or time.monotonic() - shown_at >= STATUS_EVERY_S:
                    shown_at = time.monotonic()
                    yield update | {status: text}
            yield {status: "Putting the faces back and checking identity…"}
            finished_run = FinishedRun(prepared, restored, seeds, references_found, loaded)
            result = finished_run.finish(pipe.is_smoke_test_model)
            seconds = time.monotonic() - started
            with result_folder() as folder:
                yield shown_result(result, loaded, seconds, folder) | {
                    status: f"Done in {format_duration(seconds)}.",
                    preview: gr.Image(value=None, visible=False),  # the live estimate has done its job
                    widgets["seed"]: result.config.seed,  # the one drawn when "Random seed" was ticked
                    finished: True,
                    last_run: finished_run.with_result(result) if prepared.config.candidates > 1 else None,
                }

        @show_errors
        def pick_candidate(run: FinishedRun | None, selected: gr.SelectData) -> Iterator[dict]:
            """Paste back the candidate the visitor clicked, instead of the one kept, and show the result again."""
            if run is None or run.result is None:
                raise ValueError("Restore a photo with more than one candidate first.")
            started = time.monotonic()
            result = run.finish(pipe.is_smoke_test_model, chosen=candidate_at(run.result, selected.index))
            with result_folder() as folder:
                yield shown_result(result, run.loaded, time.monotonic() - started, folder) | {
                    last_run: run.with_result(result)
                }

        def end_run(done: bool) -> dict:
            """After a run, finished, stopped or ended by an error (whose message stays up): Restore is offered
            again (when there is a model), and a run that did not finish says so."""
            update = {run: gr.Button(interactive=pipe is not None), stop: gr.Button(visible=False)}
            if not done:
                update |= {status: NOT_FINISHED, preview: gr.Image(visible=False)}
            return update

        cleared = [comparison, download, report, summary, faces_found, gallery, candidates, status, finished, last_run]
        run_event = run.click(
            start_run, outputs=cleared, js=SCROLL_TO_PROGRESS_JS, queue=False, api_visibility="private"
        ).then(
            restore,
            inputs=[image, randomize_seed, reference_upload],
            inputs_kwargs=widgets,
            outputs=[comparison, download, report, summary, faces_found, gallery, widgets["seed"], preview, status]
            + [candidates, run, stop, finished, last_run],
            validator=functools.partial(check_request, pipe=pipe),
            api_name=API_NAME,
            api_description=api_description(specs),
            show_progress="minimal",
            show_progress_on=[status],
            preprocess=False,  # hand the upload to authface_core.io untouched: its messages name the problem
            concurrency_limit=1,
            concurrency_id="gpu",
        )
        run_event.then(end_run, inputs=[finished], outputs=[run, stop, status, preview], queue=False)
        stop.click(None, cancels=[run_event], queue=False, api_visibility="private")  # end_run follows
        candidates.select(
            pick_candidate,
            inputs=[last_run],
            outputs=[comparison, download, report, summary, faces_found, gallery, candidates, last_run],
            api_visibility="private",
            concurrency_limit=1,
            concurrency_id="gpu",  # identity checks and paste-back of a large photo: one at a time, as restore
        )
        for name, button in presets.items():
            button.click(
                functools.partial(preset_values, PRESETS[name], widgets),
                outputs=list(widgets.values()),
                queue=False,
                api_visibility="private",
            )

    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def zero_gpu_seconds(faces: np.ndarray, config: RestoreConfig, seeds: list[int] | None = None) -> int:
    """The GPU time a ZeroGPU Space asks for one :func:`build_demo` ``diffuse(faces, config)`` call: faces x steps
    at :data:`ZERO_GPU_S_PER_FACE_STEP`, plus :data:`ZERO_GPU_SETUP_S`, within ZeroGPU's bounds."""
    work = len(faces) * config.denoising_steps * ZERO_GPU_S_PER_FACE_STEP
    return int(min(max(math.ceil(ZERO_GPU_SETUP_S + work), ZERO_GPU_MIN_S), ZERO_GPU_MAX_S))


def launch(demo: gr.Blocks, **options):
    """``demo.launch`` with the upload limit, error display and style every server of this demo uses."""
    return demo.launch(**{**LAUNCH_OPTIONS, **options})
