"""The demo on 127.0.0.1 driven through gradio_client, as an API user (or a Space) would; and its worker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError
from gradio_client.utils import Status
from PIL import Image

from authface_core.authenticity import VERDICTS
from authface_core.restore import MAX_SEED
from demo.app import API_NAME, PREVIEW_ZOOM
from tests.conftest import REPO_ROOT

from .conftest import free_port

RUNNING = {Status.PROCESSING, Status.PROGRESS, Status.ITERATING}


def restore(client: Client, photo: Path, **settings):
    """Start one restoration through the public API; returns the gradio_client Job."""
    return client.submit(image=handle_file(photo), api_name="/restore", **settings)


def test_client_restores_whole_photo_at_full_resolution(tiny_app_url, whole_photo):
    client = Client(tiny_app_url, verbose=False)
    job = restore(client, whole_photo, num_inference_steps=2, fidelity=0.5, upscale=2, seed=7)
    _cleared_preview, (before, after), gallery, report, png, summary, seed = job.result(timeout=300)
    live_preview = job.outputs()[0][0]  # streamed at the last step, before the result
    assert Image.open(live_preview).size == (PREVIEW_ZOOM * 512 // 8,) * 2  # the latent preview of a 512 px face

    width, height = Image.open(whole_photo).size
    with Image.open(png) as restored:
        assert (restored.format, restored.size) == ("PNG", (2 * width, 2 * height))
    assert Image.open(before).size == Image.open(after).size == (2 * width, 2 * height)
    assert len(report["data"]) == len(gallery) >= 1
    assert [row[0] for row in report["data"]] == list(range(1, len(gallery) + 1))
    for _face, similarity, shift, verdict, _note in report["data"]:
        assert verdict.removeprefix("⚠ ") in VERDICTS
        assert similarity is None or 0.0 <= similarity <= 1.0
        assert shift is None or shift >= 0.0
    assert seed == 7
    assert "steps 2" in summary and "Smoke-test model" in summary


def test_bad_uploads_are_answered_at_once_while_the_gpu_queue_is_busy(tiny_app_url, whole_photo, text_file, tmp_path):
    """The cheap checks run before the one-at-a-time queue: a text file or a 0-byte upload gets its answer while
    a long restoration still holds the queue, and the request queued after them is served."""
    client = Client(tiny_app_url, verbose=False)
    long_job = restore(client, whole_photo, num_inference_steps=100)
    while long_job.status().code not in RUNNING and not long_job.done():
        time.sleep(0.02)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path, message in [
        (text_file, r"notes\.txt: not an image file"),
        (empty, r"empty\.jpg: empty file \(0 bytes\)"),
    ]:
        started = time.monotonic()
        with pytest.raises(ValidationError, match=message):
            restore(client, path, num_inference_steps=1).result(timeout=60)
        assert not long_job.done(), "the bad upload waited for the restoration ahead of it"
        assert time.monotonic() - started < 30
    queued = restore(client, whole_photo, num_inference_steps=1)
    assert long_job.result(timeout=600)[3]["data"] and queued.result(timeout=300)[3]["data"]


def test_a_photo_without_a_face_is_refused_before_the_queue_and_aligned_mode_restores_it(tiny_app_url, tmp_path):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (128, 120, 110)).save(wall)
    with pytest.raises(ValidationError, match=r"wall\.png: no face detected.*tick 'Aligned face crop'"):
        Client(tiny_app_url, verbose=False).predict(image=handle_file(wall), num_inference_steps=1, api_name="/restore")
    _preview, (before, after), *_ = Client(tiny_app_url, verbose=False).predict(
        image=handle_file(wall), aligned=True, num_inference_steps=1, api_name="/restore"
    )
    assert Image.open(after).size == (512, 512)  # aligned mode restores the crop at the face size
    assert Image.open(before).size == (512, 512)  # and compares it with the crop that went in


def test_invalid_setting_is_shown_at_its_control(tiny_app_url, whole_photo):
    with pytest.raises(ValidationError, match=r"- num_inference_steps: num_inference_steps must be an integer in \[1"):
        Client(tiny_app_url, verbose=False).predict(
            image=handle_file(whole_photo), num_inference_steps=0, api_name="/restore"
        )


def test_api_parameters_are_the_setting_names(tiny_app_url):
    """Each RestoreConfig field but the server's own is a parameter of /restore, under its own name."""
    from authface_core.restore import RestoreConfig
    from authface_core.settings import describe_settings
    from demo.app import SERVER_SETTINGS

    parameters = Client(tiny_app_url, verbose=False).view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in parameters["named_endpoints"]["/restore"]["parameters"]]
    expected = [name for name in describe_settings(RestoreConfig) if name not in SERVER_SETTINGS]
    assert names[:2] == ["image", "randomize_seed"] and sorted(names[2:]) == sorted(expected)


def test_controls_take_their_range_step_and_help_from_the_settings(tiny_app_url):
    """Each control is made from its RestoreConfig field: slider bounds and step, choices, the help as its info."""
    from authface_core.restore import RestoreConfig
    from authface_core.settings import describe_settings

    components = httpx.get(f"{tiny_app_url}config", timeout=30).json()["components"]
    props = {c["props"].get("elem_id"): (c["type"], c["props"]) for c in components}
    specs = describe_settings(RestoreConfig)
    for name in ("num_inference_steps", "fidelity", "guidance_scale", "upscale"):
        kind, control = props[name]
        assert kind == "slider" and (control["minimum"], control["maximum"]) == (
            specs[name].range.low,
            specs[name].range.high,
        )
        assert control["info"] == specs[name].help
    assert props["fidelity"][1]["step"] == specs["fidelity"].range.step
    assert props["seed"][0] == "number" and props["seed"][1]["maximum"] == MAX_SEED
    assert props["scheduler"][0] == "dropdown" and [c[0] for c in props["scheduler"][1]["choices"]] == list(
        specs["scheduler"].choices
    )
    assert props["aligned"][0] == "checkbox" and props["prompt"][0] == "textbox"


def test_presets_set_every_control_but_the_photo_description():
    from authface_core.restore import FAST_PRESET
    from demo.app import PHOTO_SETTINGS, preset_values

    widgets = {name: object() for name in ("aligned", "num_inference_steps", "scheduler", "seed")}
    values = preset_values(FAST_PRESET, widgets)
    assert values == {
        widgets[name]: getattr(FAST_PRESET, name) for name in ("num_inference_steps", "scheduler", "seed")
    }
    assert all(widgets[name] not in values for name in PHOTO_SETTINGS)


def test_uploads_over_the_limit_are_refused_and_not_kept(tiny_app_url, tmp_path):
    from gradio.utils import get_upload_folder

    from demo.app import MAX_UPLOAD_BYTES

    junk = tmp_path / "junk.jpg"
    with junk.open("wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)
    with junk.open("rb") as handle:
        answer = httpx.post(f"{tiny_app_url}gradio_api/upload", files={"files": ("junk.jpg", handle)}, timeout=120)
    assert answer.status_code == 413, answer.text
    kept = [path for path in Path(get_upload_folder()).rglob("junk.jpg") if path.stat().st_size > MAX_UPLOAD_BYTES]
    assert kept == []  # nothing of it stays on the server's disk


def test_a_path_the_client_names_is_never_read(tiny_app_url, tmp_path):
    """With preprocess=False the callback receives the payload as sent: a server path in it is refused unread.
    Sent over plain HTTP, as an attacker would (gradio_client would upload a local file instead)."""
    secret = tmp_path / "someone-elses-photo.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(secret)
    parameters = Client(tiny_app_url, verbose=False).view_api(print_info=False, return_format="dict")
    defaults = {
        p["parameter_name"]: p["parameter_default"] for p in parameters["named_endpoints"]["/restore"]["parameters"]
    }
    payload = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "mine.png"}
    data = [payload, *list({**defaults, "aligned": True, "num_inference_steps": 1}.values())[1:]]
    answer = httpx.post(f"{tiny_app_url}gradio_api/call/{API_NAME}", json={"data": data}, timeout=60)
    assert answer.status_code == 400, answer.text  # refused before the checks and the queue
    assert "it was not uploaded by a user" in answer.json()["detail"]


def test_tiny_model_page_says_outputs_are_from_a_random_weight_model(tiny_app_url):
    notice = component_value(tiny_app_url, "model-notice")
    assert "random weights" in notice and "not restorations" in notice


def test_entry_point_starts_without_model_and_the_page_says_why(tmp_path, text_file):
    """``python app.py`` as a Space runs it, with AUTHFACE_MODEL naming a checkpoint that does not exist."""
    port = free_port()
    environment = {**os.environ, "AUTHFACE_MODEL": str(tmp_path / "no-such-checkpoint"), "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, server)
        notice = component_value(url, "model-notice")
        assert "Model not available" in notice and "no-such-checkpoint" in notice and "--model" in notice
        with pytest.raises(ValidationError, match="Model not available"):
            Client(url, verbose=False).predict(image=handle_file(text_file), api_name="/restore")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert f"could not load model {tmp_path / 'no-such-checkpoint'}" in stderr.decode()  # not "model None"


def test_random_seed_is_reported_exactly(tiny_app_url, whole_photo):
    """The seed drawn for "Random seed" comes back in the page's seed box, which holds it exactly only below 2**53."""
    client = Client(tiny_app_url, verbose=False)
    summary, seed = client.predict(
        image=handle_file(whole_photo), num_inference_steps=1, randomize_seed=True, api_name="/restore"
    )[-2:]
    assert f"seed {seed})" in summary
    assert 0 <= seed <= MAX_SEED


def test_entry_point_takes_the_model_from_the_environment(monkeypatch):
    from demo.__main__ import parse_args

    monkeypatch.setenv("AUTHFACE_MODEL", "some-org/some-model")
    model, server = parse_args([])
    assert model.model is None and model.resolved_model == "some-org/some-model"
    model, server = parse_args(["--model", "tiny", "--port", "7861", "--dtype", "fp32"])
    assert (model.model, model.dtype, server.port) == ("tiny", "fp32", 7861)


def wait_until_serving(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    """Poll ``url`` until the server answers; fail with its stderr if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"app.py exited with {server.returncode}: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"app.py did not serve {url} within {timeout_s:.0f} s")


def component_value(url: str, elem_id: str):
    """The value a component shows on page load, read from the app's public /config."""
    components = httpx.get(f"{url.rstrip('/')}/config", timeout=30).json()["components"]
    return next(c["props"]["value"] for c in components if c["props"].get("elem_id") == elem_id)


def test_closing_the_stream_stops_the_restoration_before_returning(astronaut, monkeypatch):
    """When a page goes away Gradio closes the generator: the worker must stop at its next step and be
    gone when close() returns, or a second restoration could share the GPU despite the queue's limit."""
    from authface_core.pipeline.loading import load_pipeline
    from authface_core.restore import RestoreConfig
    from demo import app as demo_app

    steps_run = []
    real_restore = demo_app.restore_image

    def counting_restore(image, pipe, config, *, progress_callback):
        def count(step):
            steps_run.append(step.step)
            progress_callback(step)

        return real_restore(image, pipe, config, progress_callback=count)

    monkeypatch.setattr(demo_app, "restore_image", counting_restore)
    config = RestoreConfig(aligned=True, face_size=64, num_inference_steps=100, check_identity=False)
    stream = demo_app.stream_restore(astronaut, load_pipeline("tiny"), config)
    assert next(stream).step == 1
    stream.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("authface-restore")]
    assert max(steps_run) < 10, f"the worker ran on to step {max(steps_run)} of 100 after the stream was closed"
