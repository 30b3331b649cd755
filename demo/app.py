"""The restoration demo: upload a face photo, restore it with AuthFace, compare, check identity, download.

Thin on purpose (STYLE.md, section 3): every decision is taken in ``authface_core``; this module
maps widgets to a :class:`~authface_core.restore.RestoreConfig`, streams the pipeline's progress
to the page and turns :class:`~authface_core.errors.AuthFaceError` into ``gr.Error``.

Read top-down: plain functions, then :func:`build_demo` (the Blocks, then the events).
Nothing launches on import; ``python app.py`` at the repository root does.
"""

from __future__ import annotations

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
from authface_core.faces.blend import MAX_UPSCALE, upscale_image
from authface_core.io import load_image, save_image
from authface_core.pipeline.constants import MAX_INFERENCE_STEPS, SCHEDULER_NAMES
from authface_core.pipeline.loading import load_pipeline
from authface_core.restore import (
    FACE_SELECTION_MODES,
    FAST_PRESET,
    RELEASED_PRESET,
    RestoreConfig,
    RestoreResult,
    StepProgress,
    describe_progress,
    input_at_output_size,
    restore_image,
)

logger = logging.getLogger(__name__)

API_NAME = "restore"
MODES = {"whole photo": False, "aligned face": True}
MAX_SEED = 2**53 - 1  # the largest integer a browser number holds exactly
REPORT_HEADERS = ["face", "identity similarity", "landmark shift (px)", "verdict", "note"]
REPORT_COLUMN_WIDTHS = ["7%", "13%", "13%", "17%", "50%"]
PREVIEW_ZOOM = 4  # the pipeline's previews are 1/8 of the face size: show them at half of it
# Results (Gradio's cache and our PNGs) are kept this long, then deleted: enough to download them.
KEEP_RESULTS_S = 3600

SMOKE_TEST_NOTICE = (
    "**Smoke-test model.** This page runs `tiny`, a miniature model with *random weights* built only "
    "to test the software. Its outputs are noise, not restorations, and say nothing about AuthFace's "
    "quality. Start the app with `--model Ethanliang99/AuthFace` (or a local checkpoint folder) for "
    "real results."
)


class _RestoreCancelled(Exception):
    """Raised inside the worker at the next step once the page that asked for the restoration is gone."""


def load_model(model: str | None) -> tuple[object | None, str]:
    """Load the pipeline once at start-up; return it (or None) and the notice the page shows about it.

    Any failure is caught so that the app still starts and explains itself instead of crashing.
    """
    try:
        pipe = load_pipeline(model)
    except AuthFaceError as error:  # the loader's message says what was tried and how to fix it
        logger.error("could not load model %r: %s", model, error)
        return None, f"**Model not available.** {error}"
    except Exception as error:  # noqa: BLE001 - the page must start and say why, whatever went wrong
        logger.exception("could not load model %r", model)
        return None, f"**Model not available.** {type(error).__name__}: {error}"
    return pipe, SMOKE_TEST_NOTICE if pipe.is_smoke_test_model else ""


def preset_widgets(config: RestoreConfig) -> tuple[int, float, float, str]:
    """The (steps, fidelity, guidance, scheduler) widget values of a preset."""
    return config.num_inference_steps, config.fidelity, config.guidance_scale, config.scheduler


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


def build_demo(model: str | None = None, *, gpu: Callable[[Callable], Callable] | None = None) -> gr.Blocks:
    """Build the restoration app for ``model`` (Hub id, local folder or ``"tiny"``; None: ``AUTHFACE_MODEL``).

    ``gpu`` wraps the restoration callback, e.g. ``spaces.GPU`` on a ZeroGPU Space; None leaves it as is.
    The model is loaded here, once; when it cannot be, the page still starts and says why.
    """
    pipe, model_notice = load_model(model)
    # Removed once the app (whose restore callback holds it) is garbage-collected, or at exit.
    downloads = tempfile.TemporaryDirectory(prefix="authface-demo-")

    def restore(
        image,
        mode,
        steps,
        fidelity,
        guidance,
        scheduler,
        faces,
        upscale,
        seed,
        randomize,
        progress=gr.Progress(),  # Gradio finds its progress tracker by this default
    ):
        """Restore the faces of a photo; streams previews, then returns the comparison, faces, report and PNG."""
        if pipe is None:
            raise gr.Error(model_notice, print_exception=False)
        if not image or not image.get("path"):
            raise gr.Error("Upload a photo first (drop a file on the image box, paste one, or use the webcam).")
        source = image.get("orig_name") or Path(image["path"]).name
        if mode not in MODES:
            raise gr.Error(f"mode must be one of {list(MODES)}, got {mode!r}")
        try:
            config = RestoreConfig(
                num_inference_steps=int(steps),
                fidelity=float(fidelity),
                guidance_scale=float(guidance),
                scheduler=scheduler,
                seed=None if randomize or seed is None else int(seed),
                face_selection=faces,
                upscale=int(upscale),
                aligned=MODES[mode],
            )
        except (TypeError, ValueError) as error:
            raise gr.Error(f"Invalid setting: {error}", print_exception=False) from error
        try:
            loaded = load_image(image["path"], name=source)
            progress(0, desc="Starting" if config.aligned else "Finding faces")
            for event in stream_restore(loaded, pipe, config):
                if isinstance(event, StepProgress):
                    progress((event.step, event.num_steps), desc=describe_progress(event, config.max_batch_size))
                    if event.preview is not None:
                        yield upscale_image(event.preview, PREVIEW_ZOOM), *[gr.skip()] * 6  # the rest waits
                    continue
                result = event
        except NoFaceDetectedError as error:
            raise gr.Error(f"{error} Here: set Mode to 'aligned face'.", print_exception=False) from error
        except AuthFaceError as error:  # bad upload, unusable checkpoint...: the message says what to do
            raise gr.Error(str(error), print_exception=False) from error
        flagged = [str(face.index + 1) for face in result.faces if face.authenticity and face.authenticity.warning]
        if flagged:
            gr.Warning(f"Look twice at face {', '.join(flagged)}: see the authenticity report.")
        yield (
            None,  # the live estimate has done its job
            (input_at_output_size(loaded, result), result.image),  # same size: the slider compares pixels
            face_gallery(result),
            report_rows(result),
            str(write_download(result, source, Path(downloads.name))),
            run_summary(result, source),
            result.config.seed,  # the one drawn when "Random seed" was ticked
        )

    restore_fn = gpu(restore) if gpu is not None else restore

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
                    label="Photo",
                    type="filepath",
                    sources=["upload", "clipboard", "webcam"],
                    elem_id="input-image",
                )
                mode = gr.Radio(
                    list(MODES),
                    value="whole photo",
                    label="Mode",
                    info="'aligned face': the photo is already a centred, FFHQ-aligned face crop",
                )
                steps = gr.Slider(
                    1,
                    MAX_INFERENCE_STEPS,
                    value=RELEASED_PRESET.num_inference_steps,
                    step=1,
                    label="Steps",
                    elem_id="steps",
                )
                fidelity = gr.Slider(
                    0,
                    1,
                    value=RELEASED_PRESET.fidelity,
                    step=0.05,
                    label="Fidelity",
                    info="higher keeps closer to the input, lower restores more",
                    elem_id="fidelity",
                )
                with gr.Accordion("More settings", open=False):
                    guidance = gr.Slider(1, 20, value=RELEASED_PRESET.guidance_scale, step=0.5, label="Guidance")
                    scheduler = gr.Dropdown(
                        list(SCHEDULER_NAMES),
                        value=RELEASED_PRESET.scheduler,
                        label="Scheduler",
                        info="ddpm: as released; dpmpp: the fast preset's",
                    )
                    faces = gr.Radio(
                        list(FACE_SELECTION_MODES), value=RELEASED_PRESET.face_selection, label="Faces to restore"
                    )
                    upscale = gr.Slider(1, MAX_UPSCALE, value=RELEASED_PRESET.upscale, step=1, label="Output upscale")
                    with gr.Row():
                        seed = gr.Number(
                            value=RELEASED_PRESET.seed, precision=0, label="Seed", minimum=0, maximum=MAX_SEED
                        )
                        randomize = gr.Checkbox(value=False, label="Random seed")
                with gr.Row():
                    fast = gr.Button("Fast preset", size="sm")
                    released = gr.Button("Released defaults", size="sm")
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
                        label="Faces: before | after",
                        columns=2,
                        height="auto",
                        scale=3,
                        elem_id="faces",
                    )

        run.click(
            restore_fn,
            inputs=[image, mode, steps, fidelity, guidance, scheduler, faces, upscale, seed, randomize],
            outputs=[preview, comparison, gallery, report, download, summary, seed],
            api_name=API_NAME,
            show_progress_on=comparison,  # leave the live estimate uncovered
            preprocess=False,  # hand the upload to authface_core.io untouched: its messages name the problem
            concurrency_limit=1,
            concurrency_id="gpu",
        )
        fast.click(
            lambda: preset_widgets(FAST_PRESET),
            outputs=[steps, fidelity, guidance, scheduler],
            queue=False,
            api_visibility="private",
        )
        released.click(
            lambda: preset_widgets(RELEASED_PRESET),
            outputs=[steps, fidelity, guidance, scheduler],
            queue=False,
            api_visibility="private",
        )

    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo
