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
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from PIL import Image

from authface_core.authenticity import VERDICTS
from demo.app import MAX_SEED, PREVIEW_ZOOM
from tests.conftest import REPO_ROOT

from .conftest import free_port

RUNNING = {Status.PROCESSING, Status.PROGRESS, Status.ITERATING}


def restore(client: Client, photo: Path, **settings):
    """Start one restoration through the public API; returns the gradio_client Job."""
    return client.submit(image=handle_file(photo), api_name="/restore", **settings)


def test_client_restores_whole_photo_at_full_resolution(tiny_app_url, whole_photo):
    client = Client(tiny_app_url, verbose=False)
    job = restore(client, whole_photo, steps=2, fidelity=0.5, upscale=2, seed=7)
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


def test_bad_upload_is_reported_and_the_queue_keeps_serving(tiny_app_url, whole_photo, text_file):
    """One job at a time: the text file waits its turn with a visible position, fails with the loader's
    message, and the request queued after it is still served."""
    client = Client(tiny_app_url, verbose=False)
    first = restore(client, whole_photo, steps=2)
    while first.status().code not in RUNNING and not first.done():
        time.sleep(0.02)
    bad = client.submit(image=handle_file(text_file), steps=1, api_name="/restore")
    after_bad = restore(client, whole_photo, steps=1)

    queued_ranks = set()
    while not bad.done():
        status = bad.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            queued_ranks.add(status.rank)
        time.sleep(0.05)
    assert queued_ranks, "the second job never showed a queue position while the first one ran"
    with pytest.raises(AppError, match=r"notes\.txt: not an image file"):
        bad.result()
    assert first.result(timeout=300)[3]["data"]
    assert after_bad.result(timeout=300)[3]["data"]


def test_photo_without_face_offers_aligned_mode(tiny_app_url, tmp_path):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (160, 120), (128, 120, 110)).save(wall)
    with pytest.raises(AppError, match=r"wall\.png: no face detected.*set Mode to 'aligned face'"):
        Client(tiny_app_url, verbose=False).predict(image=handle_file(wall), steps=1, api_name="/restore")
    _preview, (before, after), *_ = Client(tiny_app_url, verbose=False).predict(
        image=handle_file(wall), mode="aligned face", steps=1, api_name="/restore"
    )
    assert Image.open(after).size == (512, 512)  # aligned mode restores the crop at the face size
    assert Image.open(before).size == (512, 512)  # and compares it with the crop that went in


def test_invalid_setting_is_reported_by_name(tiny_app_url, whole_photo):
    with pytest.raises(AppError, match="num_inference_steps"):
        Client(tiny_app_url, verbose=False).predict(image=handle_file(whole_photo), steps=0, api_name="/restore")


def test_tiny_model_page_says_outputs_are_from_a_random_weight_model(tiny_app_url):
    notice = component_value(tiny_app_url, "model-notice")
    assert "random weights" in notice and "not restorations" in notice


def test_entry_point_starts_without_model_and_the_page_says_why(tmp_path, text_file):
    """``python app.py`` as a Space runs it, with AUTHFACE_MODEL naming a checkpoint that does not exist."""
    port = free_port()
    environment = {**os.environ, "AUTHFACE_MODEL": str(tmp_path / "no-such-checkpoint")}
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
        with pytest.raises(AppError, match="Model not available"):
            Client(url, verbose=False).predict(image=handle_file(text_file), api_name="/restore")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_random_seed_is_reported_exactly(tiny_app_url, whole_photo):
    """The seed drawn for "Random seed" comes back in the page's seed box, which holds it exactly only below 2**53."""
    client = Client(tiny_app_url, verbose=False)
    summary, seed = client.predict(image=handle_file(whole_photo), steps=1, randomize=True, api_name="/restore")[-2:]
    assert f"seed {seed})" in summary
    assert 0 <= seed <= MAX_SEED


def test_entry_point_takes_the_model_from_the_environment(monkeypatch):
    import app

    monkeypatch.setenv("AUTHFACE_MODEL", "some-org/some-model")
    assert app.parse_args([]).model == "some-org/some-model"
    assert app.parse_args(["--model", "tiny", "--port", "7861"]).port == 7861


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
