"""The restoration demo: upload a face photo, restore it with AuthFace, compare, check identity, download.

Thin on purpose (STYLE.md, section 3): every decision is taken in ``authface_core``. The settings
controls are made from :class:`~authface_core.restore.RestoreConfig`'s fields (range, step, choices,
help), one per field except the server's own (:data:`SERVER_SETTINGS`), and reach the callback by
field name, so a new restore setting appears here without an edit. Callbacks return
``{component: value}``; :func:`show_errors` turns :class:`~authface_core.errors.AuthFaceError` into
``gr.Error`` in one place. The cheap checks (a model, a photo that decodes within the size limit,
valid settings, a face in whole-photo mode) run in :func:`check_request`, Gradio's validator, before
a request joins the one-at-a-time GPU queue.

Read top-down: plain functions, then :func:`build_demo` (the Blocks, then the events).
Nothing launches on import; ``authface-demo`` (``demo/__main__.py``) and ``python app.py`` do.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np

from authface_core.errors import AuthFaceError, NoFaceDetectedError
from authface_core.faces.blend import upscale_image
from authface_core.io import load_image, save_image
from authface_core.model_config import ModelConfig
from authface_core.restore import (
    PRESETS,
    RELEASED_PRESET,
    RestoreConfig,
    RestoreResult,
    StepProgress,
    describe_progress,
    input_at_output_size,
    restore_image,
    select_restorable_faces,
)
from authface_core.settings import SettingSpec, describe_settings, settings_from_dict

logger = logging.getLogger(__name__)

API_NAME = "restore"
# Settings the server fixes (memory and time per request), so no visitor can raise them.
SERVER_SETTINGS = ("face_size", "preview_every", "max_batch_size")
# Shown above the fold; the other settings go under "More settings".
MAIN_SETTINGS = ("aligned", "num_inference_steps", "fidelity")
# Settings that describe the photo rather than how to restore it: a preset leaves them alone.
PHOTO_SETTINGS = ("aligned",)
# Friendlier labels than the field names; any other setting is labelled from its name.
LABELS = {
    "aligned": "Aligned face crop",
    "num_inference_steps": "Steps",
    "guidance_scale": "Guidance",
    "face_selection": "Faces to restore",
    "upscale": "Output upscale",
}
PRESET_LABELS = {"released": "Released defaults", "fast": "Fast preset"}
NO_FACE_HINT = "Here: tick 'Aligned face crop' if the photo is already one."
REPORT_HEADERS = ["face", "identity similarity", "landmark shift (px)", "verdict", "note"]
REPORT_COLUMN_WIDTHS = ["7%", "13%", "13%", "17%", "50%"]
PREVIEW_ZOOM = 4  # the pipeline's previews are 1/8 of the face size: show them at half of it
# A slider for numbers with at most this many stops; a number box beyond (seeds, pixel counts).
MAX_SLIDER_STOPS = 1000
# Results (Gradio's cache and our PNGs) are kept this long, then deleted: enough to download them.
KEEP_RESULTS_S = 3600
# Uploads above this are refused by Gradio before they are stored: a 60 MP JPEG is about 25 MB, an 8K PNG
# can reach 100 MB (restore those with the command line).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD_BYTES, "show_error": True}

SMOKE_TEST_NOTICE = (
    "**Smoke-test model.** This page runs `tiny`, a miniature model with *random weights* built only "
    "to test the software. Its outputs are noise, not restorations, and say nothing about AuthFace's "
    "quality. Start the app with `--model Ethanliang99/AuthFace` (or a local checkpoint folder) for "
    "real results."
)


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
    """The page's message for an error of ours: its text, plus what to do here for a photo without a face."""
    hint = f" {NO_FACE_HINT}" if isinstance(error, NoFaceDetectedError) else ""
    return gr.Error(f"{error}{hint}", print_exception=False)


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
    and step, a number box, or a text box; its help is the control's info line."""
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
        if low is not None and high is not None and (high - low) / step <= MAX_SLIDER_STOPS:
            return gr.Slider(low, high, step=step, **options)
        return gr.Number(minimum=low, maximum=high, precision=0 if spec.kind is int else None, **options)
    return gr.Textbox(lines=3 if len(str(value)) > 60 else 1, **options)


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


def check_request(image, randomize_seed, pipe, model_notice: str, **settings) -> list[dict]:
    """The cheap checks, before the GPU queue: one ``gr.validate`` per input of the restore event (the
    photo, "Random seed", then each setting), the problem shown at the control it concerns."""
    verdicts = {"image": gr.validate(True, ""), "randomize_seed": gr.validate(True, "")}
    verdicts |= {name: gr.validate(True, "") for name in settings}
    try:
        config = request_config(randomize_seed, settings)
        if pipe is None:
            raise ValueError(model_notice)
        loaded = load_image(upload_path(image), name=upload_name(image))
        if not config.aligned:
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


def preset_values(preset: RestoreConfig, widgets: dict) -> dict:
    """``{control: value}`` setting every control to the preset, except the ones describing the photo."""
    return {widget: getattr(preset, name) for name, widget in widgets.items() if name not in PHOTO_SETTINGS}


def stream_restore(image, pipe, config: RestoreConfig) -> Iterator[StepProgress | RestoreResult]:
    """Yield each :class:`StepProgress` of :func:`restore_image`, then its :class:`RestoreResult`.

    Gradio streams what a generator yields, while ``restore_image`` reports through a callback, so
    the restoration runs in a worker thread. If the page goes away (the generator is closed), the
    worker stops at its next step, and this returns only once it has, so the queue's one-job-at-a-
    time limit really holds for the GPU.
    """
    events: queue.Queue[StepProgress | None] = queue.Queue()
    cancelled = threading.Event()

    def report(step: StepProgress) -> None:
        if cancelled.is_set():
            raise _RestoreCancelled
        events.put(step)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="authface-restore") as worker:
        future = worker.submit(restore_image, image, pipe, config, progress_callback=report)
        future.add_done_callback(lambda _: events.put(None))
        try:
            while (event := events.get()) is not None:
                yield event
            yield future.result()
        finally:
            cancelled.set()


def report_rows(result: RestoreResult) -> list[list[object]]:
    """One row of the authenticity table per restored face."""
    rows = []
    for face in result.faces:
        report = face.authenticity
        if report is None:
            rows.append([face.index + 1, None, None, "not checked", ""])
            continue
        similarity = None if report.identity_similarity is None else round(report.identity_similarity, 3)
        shift = None if report.landmark_shift is None else round(report.landmark_shift, 1)
        verdict = f"⚠ {report.verdict}" if report.warning else report.verdict
        rows.append([face.index + 1, similarity, shift, verdict, report.message])
    return rows


def face_gallery(result: RestoreResult) -> list[tuple[np.ndarray, str]]:
    """Each face as one image, input on the left and restoration on the right, (S, 2S, 3) uint8."""
    return [
        (np.concatenate([face.input_face, face.restored_face], axis=1), f"Face {face.index + 1}: before | after")
        for face in result.faces
    ]


def run_summary(result: RestoreResult, source: str) -> str:
    """A short account of the run: what was restored, with which settings, and what was skipped."""
    config = result.config
    height, width = result.image.shape[:2]
    lines = [
        f"Restored {len(result.faces)} face(s) of **{source}** → {width}×{height} PNG "
        f"(steps {config.num_inference_steps}, fidelity {config.fidelity:.2f}, guidance "
        f"{config.guidance_scale:g}, scheduler {config.scheduler}, seed {config.seed}).",
    ]
    lines += [f"- Skipped a face at ({box.left:.0f}, {box.top:.0f}): {reason}" for box, reason in result.skipped]
    if result.smoke_test_model:
        lines.append("\n*Smoke-test model: random weights, the output is not a restoration.*")
    return "\n".join(lines)


def write_download(result: RestoreResult, source: str, folder: Path) -> Path:
    """Write the full-resolution result as a PNG (atomically, alpha kept) and return its path.

    Each run gets its own sub-folder (same names never collide); those older than
    ``KEEP_RESULTS_S`` are deleted first, as Gradio has long copied them to its cache by then.
    """
    expired = time.time() - KEEP_RESULTS_S
    for old_run in folder.iterdir():
        if old_run.stat().st_mtime < expired:
            shutil.rmtree(old_run, ignore_errors=True)
    run_folder = Path(tempfile.mkdtemp(dir=folder))
    path = run_folder / f"{Path(source).stem}_authface.png"
    save_image(path, result.image, result.alpha)
    return path


def build_demo(model: ModelConfig | None = None, *, gpu: Callable[[Callable], Callable] | None = None) -> gr.Blocks:
    """Build the restoration app for ``model`` (default: ``ModelConfig()``, i.e. ``$AUTHFACE_MODEL`` or the release).

    ``gpu`` wraps the restoration callback, e.g. ``spaces.GPU`` on a ZeroGPU Space; None leaves it as is.
    The model is loaded here, once; when it cannot be, the page still starts and says why.
    """
    pipe, model_notice = load_model(model or ModelConfig())
    # Removed once the app (whose restore callback holds it) is garbage-collected, or at exit.
    downloads = tempfile.TemporaryDirectory(prefix="authface-demo-")
    specs = {name: spec for name, spec in describe_settings(RestoreConfig).items() if name not in SERVER_SETTINGS}

    with gr.Blocks(
        title="AuthFace Studio: authentic face restoration", delete_cache=(KEEP_RESULTS_S, KEEP_RESULTS_S)
    ) as demo:
        gr.Markdown(
            "# AuthFace Studio\nRestore blurry, noisy or old face photos with the AuthFace diffusion prior, "
            "then check that the result is still the same person."
        )
        gr.Markdown(model_notice, visible=bool(model_notice), elem_id="model-notice")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label="Photo", type="filepath", sources=["upload", "clipboard", "webcam"], elem_id="input-image"
                )
                widgets = {name: setting_widget(specs[name], getattr(RELEASED_PRESET, name)) for name in MAIN_SETTINGS}
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
                run = gr.Button("Restore", variant="primary", elem_id="restore-button")
            with gr.Column(scale=2):
                comparison = gr.ImageSlider(label="Before / after", type="numpy", elem_id="comparison")
                report = gr.Dataframe(
                    headers=REPORT_HEADERS,
                    type="array",
                    label="Authenticity report",
                    interactive=False,
                    wrap=True,
                    column_widths=REPORT_COLUMN_WIDTHS,
                    elem_id="report",
                )
                download = gr.File(label="Full-resolution result (PNG)", interactive=False, elem_id="download")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                with gr.Row():
                    preview = gr.Image(
                        label="Current estimate", interactive=False, height=256, scale=1, elem_id="preview"
                    )
                    gallery = gr.Gallery(
                        label="Faces: before | after", columns=2, height="auto", scale=3, elem_id="faces"
                    )

        @show_errors
        def restore(image, randomize_seed, progress=gr.Progress(), **settings):
            """Restore the faces of a photo; streams previews, then the comparison, faces, report and PNG."""
            config = request_config(randomize_seed, settings)
            if pipe is None:
                raise ValueError(model_notice)
            loaded = load_image(upload_path(image), name=upload_name(image))
            progress(0, desc="Starting" if config.aligned else "Finding faces")
            for event in stream_restore(loaded, pipe, config):
                if isinstance(event, StepProgress):
                    progress((event.step, event.num_steps), desc=describe_progress(event, config.max_batch_size))
                    if event.preview is not None:
                        yield {preview: upscale_image(event.preview, PREVIEW_ZOOM)}
                    continue
                result = event
            flagged = [str(f.index + 1) for f in result.faces if f.authenticity and f.authenticity.warning]
            if flagged:
                gr.Warning(f"Look twice at face {', '.join(flagged)}: see the authenticity report.")
            yield {
                preview: None,  # the live estimate has done its job
                comparison: (input_at_output_size(loaded, result), result.image),  # same size: compares pixels
                gallery: face_gallery(result),
                report: report_rows(result),
                download: str(write_download(result, loaded.source, Path(downloads.name))),
                summary: run_summary(result, loaded.source),
                widgets["seed"]: result.config.seed,  # the one drawn when "Random seed" was ticked
            }

        run.click(
            gpu(restore) if gpu is not None else restore,
            inputs=[image, randomize_seed],
            inputs_kwargs=widgets,
            outputs=[preview, comparison, gallery, report, download, summary, widgets["seed"]],
            validator=functools.partial(check_request, pipe=pipe, model_notice=model_notice),
            api_name=API_NAME,
            show_progress_on=comparison,  # leave the live estimate uncovered
            preprocess=False,  # hand the upload to authface_core.io untouched: its messages name the problem
            concurrency_limit=1,
            concurrency_id="gpu",
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


def launch(demo: gr.Blocks, **options):
    """``demo.launch`` with the upload limit and error display every server of this demo uses."""
    return demo.launch(**{**LAUNCH_OPTIONS, **options})
