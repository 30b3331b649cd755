"""The demo on 127.0.0.1 driven through gradio_client, as an API user (or a Space) would; and its worker."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError
from gradio_client.utils import Status, sanitize_parameter_names
from PIL import Image

from authface_core.authenticity import VERDICTS
from authface_core.restore import MAX_SEED, RestoreConfig, largest_upscale
from demo.app import API_NAME, MAX_OUTPUT_PIXELS, PREVIEW_ZOOM, SCREEN_MAX_SIDE
from tests.conftest import REPO_ROOT

from .conftest import OUTPUTS, WIDE_SIZE, free_port

RUNNING = {Status.PROCESSING, Status.PROGRESS, Status.ITERATING}


def restore(client: Client, photo: Path, **settings):
    """Start one restoration through the public API; returns the gradio_client Job."""
    return client.submit(image=handle_file(photo), api_name="/restore", **settings)


def restored(client: Client, photo: Path, **settings) -> dict:
    """One restoration's outputs, by name (``OUTPUTS``)."""
    return dict(zip(OUTPUTS, restore(client, photo, **settings).result(timeout=300), strict=True))


def image_format_and_size(path: str) -> tuple[str, tuple[int, int]]:
    with Image.open(path) as image:
        return image.format, image.size


def test_client_restores_whole_photo_at_full_resolution(tiny_app_url, whole_photo):
    client = Client(tiny_app_url, verbose=False)
    job = restore(client, whole_photo, num_inference_steps=5, fidelity=0.5, upscale=2, seed=7)
    out = dict(zip(OUTPUTS, job.result(timeout=300), strict=True))
    previews = [outputs[OUTPUTS.index("preview")] for outputs in job.outputs()]
    live_preview = next(path for path in previews if isinstance(path, str))  # streamed at the last step
    assert Image.open(live_preview).size == (PREVIEW_ZOOM * 512 // 8,) * 2  # the latent preview of a 512 px face

    width, height = Image.open(whole_photo).size
    assert image_format_and_size(out["png"]) == ("PNG", (2 * width, 2 * height))
    before, after = out["comparison"]
    assert Image.open(before).size == Image.open(after).size == (2 * width, 2 * height)
    report, gallery = out["report"], out["gallery"]
    assert len(report["data"]) == len(gallery) >= 1
    assert [row[0] for row in report["data"]] == list(range(1, len(gallery) + 1))
    for _face, similarity, shift, verdict, _note in report["data"]:
        assert verdict.removeprefix("⚠ ") in VERDICTS
        assert similarity is None or 0.0 <= similarity <= 1.0
        assert shift is None or shift >= 0.0
    assert out["seed"] == 7
    assert "2 of 5 steps at fidelity 0.50" in out["summary"] and "Smoke-test model" in out["summary"]
    assert out["status"].startswith("Done in")


def test_a_wide_photo_at_the_largest_upscale_comes_back_screen_sized_on_screen_and_full_size_in_png(
    tiny_app_url, photos
):
    """Defects 1 and 3: a 4200x700 photo at x4 (16800 px wide, past WebP's limit) returns; the screen gets lossless
    PNGs of at most a screenful, the download the full 16800x2800 PNG, and nothing of ours stays behind."""
    upscale = largest_upscale(WIDE_SIZE, RestoreConfig(), MAX_OUTPUT_PIXELS)
    assert upscale == 4  # the largest allowed, and the one that crashed before
    ours_before = set(Path(tempfile.gettempdir()).glob("authface-result-*"))
    out = restored(Client(tiny_app_url, verbose=False), photos["wide"], num_inference_steps=1, upscale=upscale)
    assert image_format_and_size(out["png"]) == ("PNG", (WIDE_SIZE[0] * upscale, WIDE_SIZE[1] * upscale))
    screen = (SCREEN_MAX_SIDE, round(SCREEN_MAX_SIDE * WIDE_SIZE[1] / WIDE_SIZE[0]))
    for shown in [*out["comparison"], out["faces_found"]]:
        assert image_format_and_size(shown) == ("PNG", screen)
    assert all(image_format_and_size(item["image"])[0] == "PNG" for item in out["gallery"])
    assert [row[0] for row in out["report"]["data"]] == [1, 2]
    assert set(Path(tempfile.gettempdir()).glob("authface-result-*")) == ours_before  # Gradio keeps its copy only


def test_a_result_over_the_pixel_cap_is_refused_before_the_pipeline_runs(
    tiny_app_url, tmp_path, astronaut, monkeypatch
):
    from demo import app as demo_app

    calls = []
    real = demo_app.restore_faces
    monkeypatch.setattr(demo_app, "restore_faces", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    tall = tmp_path / "tall.png"
    Image.fromarray(np.tile(astronaut, (3, 9, 1))[:1400, :4200]).save(tall)  # 4200x1400: x4 is 94 MP
    with pytest.raises(
        ValidationError, match=r"upscale 4 would make a 16800x5600 result .* largest upscale that fits is 2"
    ):
        restored(Client(tiny_app_url, verbose=False), tall, num_inference_steps=1, upscale=4)
    assert calls == []  # refused before the queue: the model never ran


def test_aligned_crop_comes_back_at_its_size_and_a_non_square_one_is_refused(tiny_app_url, photos):
    """Defect 8: a 1024 px aligned crop is restored at the model's 512 px and returned at 1024, and the summary
    says so; a photo that is not square is refused in aligned mode instead of being squashed."""
    client = Client(tiny_app_url, verbose=False)
    out = restored(client, photos["crop_1024"], aligned=True, num_inference_steps=1)
    assert image_format_and_size(out["png"]) == ("PNG", (1024, 1024))
    assert "restored at 512 px" in out["summary"] and "1024×1024 PNG" in out["summary"]
    assert out["faces_found"] is None
    with pytest.raises(ValidationError, match=r"wall\.png: an aligned face crop is square, this image is 160x120"):
        restored(client, photos["wall"], aligned=True, num_inference_steps=1)


def test_summary_counts_the_steps_that_ran(tiny_app_url, photos):
    """Defect 9: at fidelity 1 no step runs, and the summary says so instead of 'steps 50'."""
    client = Client(tiny_app_url, verbose=False)
    out = restored(client, photos["astronaut"], fidelity=1.0)
    assert "no denoising step at fidelity 1" in out["summary"] and "50 of" not in out["summary"]
    assert (
        "1 of 4 steps at fidelity 0.75"
        in restored(client, photos["astronaut"], num_inference_steps=4, fidelity=0.75)["summary"]
    )


def test_a_grayscale_photo_stays_grayscale_and_the_summary_says_so(tiny_app_url, photos):
    out = restored(Client(tiny_app_url, verbose=False), photos["gray"], num_inference_steps=1)
    with Image.open(out["png"]) as png:
        rgb = np.asarray(png.convert("RGB")).astype(int)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert "Grayscale photo: kept grayscale" in out["summary"]


def test_api_types_ranges_and_names(tiny_app_url, photos):
    """Defect 11: whole-number settings are integers (2.5 is refused, not truncated), values outside a control's
    range are refused, the seed's range is the page's 2**53 - 1, and the outputs have readable names."""
    client = Client(tiny_app_url, verbose=False)
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/restore"]
    types = {p["parameter_name"]: p["python_type"]["type"] for p in endpoint["parameters"]}
    assert types["num_inference_steps"] == types["upscale"] == types["seed"] == types["min_face_size"] == "int"
    assert f"seed: integer in [0, {MAX_SEED}] or null" in endpoint["description"]
    assert "9223372036854775807" not in endpoint["description"]
    names = [sanitize_parameter_names(p["label"]) for p in endpoint["returns"]]  # as the client shows them
    assert names == [
        "before_and_after",
        "restored_photo_full_resolution_png",
        "authenticity_report",
        "summary",
        "faces_found_numbered_as_in_the_report",
        "faces_before_and_after",
        "seed",
        "live_preview",
        "progress",
        "candidates_best_of_n_click_one_to_use_it_instead",
    ]
    for setting, value, message in [
        ("num_inference_steps", 2.5, r"num_inference_steps must be an integer, got 2\.5"),
        ("upscale", 2.5, r"upscale must be an integer, got 2\.5"),
        ("guidance_scale", -1.0, r"guidance_scale must be a number in \[0, 30\]"),
        ("guidance_scale", 31.0, r"guidance_scale must be a number in \[0, 30\]"),
        ("seed", MAX_SEED + 1, r"seed must be an integer in \[0, 9007199254740991\]"),
    ]:
        with pytest.raises(ValidationError, match=message):
            restored(client, photos["astronaut"], **{setting: value})


def test_bad_uploads_are_answered_at_once_while_the_gpu_queue_is_busy(tiny_app_url, photos, text_file, tmp_path):
    """The cheap checks run before the one-at-a-time queue: a text file or a 0-byte upload gets its answer while
    a long restoration still holds the queue, and the request queued after them is served."""
    client = Client(tiny_app_url, verbose=False)
    long_job = restore(client, photos["astronaut"], num_inference_steps=100)
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
    queued = restore(client, photos["astronaut"], num_inference_steps=1)
    report = OUTPUTS.index("report")
    assert long_job.result(timeout=600)[report]["data"] and queued.result(timeout=300)[report]["data"]


def test_a_photo_without_a_face_is_refused_before_the_queue_in_the_page_s_words(tiny_app_url, photos):
    """Defect 6: the message says what to do on this page, without a command-line flag."""
    with pytest.raises(ValidationError) as refused:
        restored(Client(tiny_app_url, verbose=False), photos["wall"], num_inference_steps=1)
    message = str(refused.value)
    assert "wall.png: no face detected" in message and "Tick 'Aligned face crop' if the photo is one" in message
    assert "--" not in message


def test_invalid_setting_is_shown_at_its_control(tiny_app_url, photos):
    with pytest.raises(ValidationError, match=r"- num_inference_steps: num_inference_steps must be an integer in \[1"):
        restored(Client(tiny_app_url, verbose=False), photos["astronaut"], num_inference_steps=0)


def test_api_parameters_are_the_setting_names(tiny_app_url):
    """Each RestoreConfig field but the server's own is a parameter of /restore, under its own name."""
    from authface_core.settings import describe_settings
    from demo.app import SERVER_SETTINGS

    parameters = Client(tiny_app_url, verbose=False).view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in parameters["named_endpoints"]["/restore"]["parameters"]]
    expected = [name for name in describe_settings(RestoreConfig) if name not in SERVER_SETTINGS]
    assert names[:3] == ["image", "randomize_seed", "references"] and sorted(names[3:]) == sorted(expected)


def test_controls_take_their_range_step_and_help_from_the_settings(tiny_app_url):
    """Each control is made from its RestoreConfig field: slider bounds and step, choices, the help as its info."""
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

    widgets = {name: object() for name in ("aligned", "upscale", "num_inference_steps", "scheduler", "seed")}
    values = preset_values(FAST_PRESET, widgets)
    assert values == {
        widgets[name]: getattr(FAST_PRESET, name) for name in ("num_inference_steps", "scheduler", "seed")
    }
    assert all(widgets[name] not in values for name in PHOTO_SETTINGS)


def test_every_example_restores_on_the_tiny_model(tiny_app_url):
    """The page's examples (made at start from the public-domain astronaut) each pass the checks and restore."""
    from demo.examples import EXAMPLES

    components = httpx.get(f"{tiny_app_url}config", timeout=30).json()["components"]
    dataset = next(c for c in components if c["type"] == "dataset")
    samples = dataset["props"]["samples"]
    assert len(samples) == len(EXAMPLES)
    client = Client(tiny_app_url, verbose=False)
    for (photo, aligned, upscale), example in zip(samples, EXAMPLES, strict=True):
        url = f"{tiny_app_url.rstrip('/')}/gradio_api/file={photo['path']}"
        local = Path(tempfile.mkdtemp()) / example.file_name
        local.write_bytes(httpx.get(url, timeout=30).content)
        out = restored(client, local, aligned=aligned, upscale=upscale, num_inference_steps=1)
        assert out["report"]["data"], example.label


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


def test_the_page_names_the_paper_the_licences_and_how_long_photos_are_kept(tiny_app_url):
    from demo.app import KEEP_FILES_S

    about, citation = component_value(tiny_app_url, "about"), component_value(tiny_app_url, "citation")
    assert "arXiv:2410.09864" in about and "ACM MM 2025" in about and "Apache-2.0" in about
    assert "non-commercial" in about and f"{KEEP_FILES_S // 3600} hour" in about
    assert "@inproceedings{liang2025authface" in citation and "Liang, Guoqiang" in citation


def test_random_seed_is_reported_exactly(tiny_app_url, photos):
    """The seed drawn for "Random seed" comes back in the page's seed box, which holds it exactly only below 2**53."""
    out = restored(Client(tiny_app_url, verbose=False), photos["astronaut"], num_inference_steps=1, randomize_seed=True)
    assert f"seed {out['seed']})" in out["summary"]
    assert 0 <= out["seed"] <= MAX_SEED


def test_entry_point_takes_the_model_from_the_environment(monkeypatch):
    from demo.__main__ import parse_args

    monkeypatch.setenv("AUTHFACE_MODEL", "some-org/some-model")
    model, server = parse_args([])
    assert model.model is None and model.resolved_model == "some-org/some-model"
    model, server = parse_args(["--model", "tiny", "--port", "7861", "--dtype", "fp32"])
    assert (model.model, model.dtype, server.port) == ("tiny", "fp32", 7861)


@pytest.mark.browser
def test_entry_point_starts_without_model_and_the_page_says_why(tmp_path, text_file, chromium):
    """``python app.py`` as a Space runs it, with AUTHFACE_MODEL naming a checkpoint that does not exist: the page
    says why in words (defect 6: not raw markdown) and its Restore button is off."""
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
        button = next(c for c in page_components(url) if c["props"].get("elem_id") == "restore-button")
        assert button["props"]["interactive"] is False
        with pytest.raises(ValidationError, match="The model is not available on this server") as refused:
            Client(url, verbose=False).predict(image=handle_file(text_file), api_name="/restore")
        assert "**" not in str(refused.value)  # plain words, not markdown
        page = chromium.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        notice = page.locator("#model-notice")
        notice.get_by_text("no-such-checkpoint").wait_for()
        assert notice.locator("strong").first.inner_text() == "Model not available." and "**" not in notice.inner_text()
        assert page.locator("#restore-button").is_disabled()
        screenshot = tmp_path / "demo_without_model.png"
        page.screenshot(path=str(screenshot))
        print(f"screenshot: {screenshot}")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert f"could not load model {tmp_path / 'no-such-checkpoint'}" in stderr.decode()  # not "model None"


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


def page_components(url: str) -> list[dict]:
    """The components of the page as its public /config describes them on page load."""
    return httpx.get(f"{url.rstrip('/')}/config", timeout=30).json()["components"]


def component_value(url: str, elem_id: str):
    """The value a component shows on page load, read from the app's public /config."""
    return next(c["props"]["value"] for c in page_components(url) if c["props"].get("elem_id") == elem_id)


def test_closing_the_stream_stops_the_restoration_before_returning(astronaut, monkeypatch):
    """When a page goes away Gradio closes the generator: the worker must stop at its next step and be
    gone when close() returns, or a second restoration could share the GPU despite the queue's limit."""
    from authface_core.pipeline.loading import load_pipeline
    from authface_core.restore import prepare_restoration
    from demo import app as demo_app

    steps_run = []
    real_restore = demo_app.restore_faces

    def counting_restore(pipe, faces, config, *, seeds, progress_callback):
        def count(step):
            steps_run.append(step.step)
            progress_callback(step)

        return real_restore(pipe, faces, config, seeds=seeds, progress_callback=count)

    monkeypatch.setattr(demo_app, "restore_faces", counting_restore)
    config = RestoreConfig(aligned=True, face_size=64, num_inference_steps=100, check_identity=False)
    prepared = prepare_restoration(astronaut, config)
    stream = demo_app.stream_restore_faces(load_pipeline("tiny"), prepared.faces, prepared.config)
    assert next(stream).step == 1
    stream.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("authface-restore")]
    assert max(steps_run) < 10, f"the worker ran on to step {max(steps_run)} of 100 after the stream was closed"


def test_reference_photos_and_candidates_through_the_api(tiny_app_url, photos, text_file):
    """The reference upload reaches the verdict column (the tiny model paints no face, so: cannot verify, with the
    reference named); best of N shows every candidate; more than 8 references are refused at their control."""
    from authface_core.references import MAX_REFERENCES

    client = Client(tiny_app_url, verbose=False)
    reference = handle_file(photos["astronaut"])
    out = restored(client, photos["astronaut"], references=[reference], candidates=2, num_inference_steps=2, seed=3)
    ((_face, _similarity, _shift, verdict, note),) = out["report"]["data"]
    assert verdict == "cannot verify (references)" and "no face found in the face checked" in note
    assert "Against the input:" in note
    captions = [item["caption"] for item in out["candidates"]]
    assert len(captions) == 2 and sum("(kept)" in caption for caption in captions) == 1
    assert captions[0].startswith("Face 1, candidate 1")
    without = restored(client, photos["astronaut"], num_inference_steps=2, seed=3)
    assert without["candidates"] == [] and "(references)" not in without["report"]["data"][0][3]
    with pytest.raises(ValidationError, match=f"- references: 9 reference photos: at most {MAX_REFERENCES}"):
        restored(client, photos["astronaut"], references=[reference] * (MAX_REFERENCES + 1))
    with pytest.raises(ValidationError, match=r"- references: .*not an image"):
        restored(client, photos["astronaut"], references=[handle_file(text_file)])


def test_a_visitors_pick_replaces_the_kept_candidate(astronaut):
    """``candidate_at`` maps a click in the candidates gallery to each face's candidate, for finish_restoration."""
    from authface_core.candidates import CandidateScore
    from authface_core.restore import FaceResult, RestoreResult
    from demo.app import candidate_at, candidate_gallery

    def face(index, kept):
        scores = [CandidateScore(i, i, "niqe", None, 5.0 + i, chosen=i == kept) for i in range(3)]
        crops = np.zeros((3, 8, 8, 3), np.uint8)
        return FaceResult(index, None, crops[0], crops[kept], None, None, candidates=scores, candidate_faces=crops)

    result = RestoreResult(image=astronaut, alpha=None, faces=[face(0, 1), face(1, 0)])
    assert [caption for _, caption in candidate_gallery(result)][
        1
    ] == "Face 1, candidate 2 (kept): no face found (niqe), NIQE 6.0"
    assert candidate_at(result, 2) == [2, 0]  # face 1's third candidate; face 2 keeps its own
    assert candidate_at(result, 4) == [1, 1]  # face 2's second
    with pytest.raises(ValueError, match="there is no candidate 7"):
        candidate_at(result, 6)
