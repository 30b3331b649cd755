"""``python -m authface_core restore``: every input restored or reported, originals never written over.

Each case of the safety issue is here: same folder in and out, a.jpg + a.png + a.tiff, an output folder
inside the input folder, a 65000x10 strip in a batch of three, an unusable output folder (checked before
the model loads), a full disk, links, a folder named x.jpg, GIF/HEIC in a folder, resume with other settings.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from authface_core.cli import main, parse_args
from authface_core.io import load_rgb, save_image

from .conftest import FACE_SIZE


def restore(tiny_checkpoint, *inputs, out, extra=()) -> int:
    """Run ``restore`` in this process on the tiny model, aligned 64 px faces, 2 steps."""
    argv = ["restore", *map(str, inputs), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu"]
    argv += ["--face-size", str(FACE_SIZE), "--steps", "2", "--seed", "9", "--no-identity-check", *extra]
    return main(argv)


def fingerprints(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture
def photos(tmp_path, small_face) -> Path:
    """A folder of two aligned faces, one nested."""
    folder = tmp_path / "photos"
    save_image(folder / "a.png", small_face)
    save_image(folder / "nested" / "b.jpg", small_face[::-1])
    return folder


@pytest.fixture
def model_never_loads(monkeypatch):
    """Fail the test if the model is loaded: the checks it covers must come first."""
    from authface_core.model_config import ModelConfig

    def refuse(self):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(ModelConfig, "load", refuse)


def test_folder_with_a_corrupt_file_restores_the_rest_and_exits_1(tiny_checkpoint, photos, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = fingerprints(photos)
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, photos, out=out, extra=["--aligned", "--fidelity", "0.4"]) == 1
    stderr = capsys.readouterr().err
    assert "broken.jpg" in stderr and "1 failed" in stderr and "2 restored" in stderr
    assert "not a restoration" in stderr  # the tiny model says what it is
    for name in ("a.png", "nested/b.jpg"):  # same name and format as the input
        assert load_rgb(out / name).shape == (FACE_SIZE, FACE_SIZE, 3)
        record = json.loads((out / f"{name}.json").read_text())
        assert record["settings"]["num_inference_steps"] == 2 and record["settings"]["fidelity"] == 0.4
        assert record["settings"]["seed"] == 9 and record["smoke_test_model"] is True and "warning" in record
        assert record["faces"] == [{"index": 0, "box": None, "authenticity": None}]
    assert not (out / "broken.jpg").exists()
    assert fingerprints(photos) == before

    first = (out / "a.png").stat().st_mtime_ns
    assert restore(tiny_checkpoint, photos, out=out, extra=["--aligned", "--fidelity", "0.4"]) == 1
    assert "0 restored, 2 already done, 0 without a face, 1 failed" in capsys.readouterr().err
    assert (out / "a.png").stat().st_mtime_ns == first


@pytest.mark.parametrize("output", ["same", "parent", "file's folder"])
def test_an_output_folder_that_is_or_contains_an_input_is_refused(
    tiny_checkpoint, photos, output, capsys, model_never_loads
):
    before = fingerprints(photos.parent)
    inputs = {"same": [photos], "parent": [photos], "file's folder": [photos / "a.png"]}[output]
    out = {"same": photos, "parent": photos.parent, "file's folder": photos}[output]
    assert restore(tiny_checkpoint, *inputs, out=out, extra=["--aligned"]) == 2
    assert f"{out}: the output folder is, or contains, the input" in capsys.readouterr().err
    assert fingerprints(photos.parent) == before  # nothing written, nothing changed


def test_same_name_in_three_formats_gives_three_outputs(tiny_checkpoint, small_face, tmp_path, capsys):
    folder = tmp_path / "scans"
    for index, suffix in enumerate((".jpg", ".png", ".tiff")):
        save_image(folder / f"a{suffix}", np.roll(small_face, 8 * index, axis=1))
    before = fingerprints(folder)
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, folder, out=out, extra=["--aligned"]) == 0
    expected = ["a.jpg", "a.jpg.json", "a.png", "a.png.json", "a.tiff", "a.tiff.json"]
    assert sorted(p.name for p in out.iterdir()) == expected
    inputs = [json.loads((out / f"a{suffix}.json").read_text())["input"] for suffix in (".jpg", ".png", ".tiff")]
    assert inputs == [str(folder / "a.jpg"), str(folder / "a.png"), str(folder / "a.tiff")]
    assert restore(tiny_checkpoint, folder, out=out, extra=["--aligned"]) == 0
    assert "0 restored, 3 already done" in capsys.readouterr().err
    assert fingerprints(folder) == before


def test_an_output_folder_inside_the_input_folder_is_left_out_of_the_search(tiny_checkpoint, photos, capsys):
    out = photos / "restored"
    for _ in range(2):
        assert restore(tiny_checkpoint, photos, out=out, extra=["--aligned"]) == 0
    assert not (out / "restored").exists()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png"]
    stderr = capsys.readouterr().err
    assert f"ignored: {out}: the output folder" in stderr and "0 restored, 2 already done" in stderr


def test_a_65000x10_strip_in_a_batch_of_three_is_reported_and_the_others_restored(
    tiny_checkpoint, astronaut, tmp_path, capsys
):
    folder = tmp_path / "photos"
    save_image(folder / "1.png", astronaut)
    save_image(folder / "2_strip.png", np.full((10, 65000, 3), 128, np.uint8))
    save_image(folder / "3.jpg", astronaut)
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, folder, out=out) == 0  # no face is a result, not a failure (as in `faces`)
    stderr = capsys.readouterr().err
    assert "2_strip.png: no face detected" in stderr
    assert "2 restored, 0 already done, 1 without a face, 0 failed" in stderr
    assert (out / "1.png").is_file() and (out / "3.jpg").is_file() and not (out / "2_strip.png").exists()


def test_any_exception_of_one_file_is_that_files_failure(tiny_checkpoint, photos, tmp_path, monkeypatch, capsys):
    import authface_core.archive.engine as engine

    real = engine.prepare_restoration

    def fails_on_a(image, config):
        if image.source.endswith("a.png"):
            raise RuntimeError("something nobody foresaw")
        return real(image, config)

    monkeypatch.setattr(engine, "prepare_restoration", fails_on_a)
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, photos, out=out, extra=["--aligned"]) == 1
    stderr = capsys.readouterr().err
    assert f"{photos / 'a.png'}: unexpected RuntimeError: something nobody foresaw" in stderr
    assert (out / "nested" / "b.jpg").is_file()


def test_an_unusable_output_folder_is_refused_before_the_model_loads(
    tiny_checkpoint, photos, tmp_path, capsys, model_never_loads
):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    assert restore(tiny_checkpoint, photos, out=a_file) == 2
    assert f"{a_file}: exists and is not a folder" in capsys.readouterr().err
    assert restore(tiny_checkpoint, photos, out=a_file / "out") == 2
    assert f"{a_file / 'out'}: cannot create the output folder" in capsys.readouterr().err


def test_a_read_only_output_folder_is_refused_before_the_model_loads(
    tiny_checkpoint, photos, tmp_path, capsys, model_never_loads, monkeypatch
):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the folder refuse as a read-only file system does
        import tempfile

        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert restore(tiny_checkpoint, photos, out=read_only) == 2
    assert f"{read_only}: cannot write in the output folder" in capsys.readouterr().err


def test_a_full_disk_stops_the_batch_and_reports_every_input(tiny_checkpoint, photos, tmp_path, monkeypatch, capsys):
    import authface_core.io as io_module

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, f"cannot write {path}: {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(io_module, "atomic_write_bytes", disk_full)
    assert restore(tiny_checkpoint, photos, out=tmp_path / "out", extra=["--aligned"]) == 1
    stderr = capsys.readouterr().err
    assert "a.png: cannot write" in stderr and "No space left on device" in stderr
    assert f"{photos / 'nested' / 'b.jpg'}: not attempted (" in stderr and "2 failed" in stderr


def test_every_file_left_out_of_a_folder_is_reported_with_its_reason(tiny_checkpoint, small_face, tmp_path, capsys):
    folder = tmp_path / "archive"
    save_image(folder / "good.png", small_face)
    save_image(folder / "x.jpg" / "inside.png", small_face)  # a folder named like a photo is a folder
    (folder / "anim.gif").write_bytes(b"GIF89a" + b"\0" * 32)
    (folder / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 32)
    (folder / "notes.txt").write_text("scanned in 1998")
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    (folder / "more").symlink_to(tmp_path)
    save_image(tmp_path / "kept-elsewhere.png", small_face)
    (folder / "linked.png").symlink_to(tmp_path / "kept-elsewhere.png")  # a link to a photo is read like the photo
    (folder / "twin.png").symlink_to(folder / "good.png")  # ... once
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, folder, out=out, extra=["--aligned"]) == 1
    stderr = capsys.readouterr().err
    for name, reason in [
        ("anim.gif", "GIF is not supported"),
        ("phone.heic", "HEIC is not supported"),
        ("loop.jpg", "symbolic link loop"),
        ("gone.jpg", "broken symbolic link"),
        ("more", "symbolic link to a folder: not followed"),
    ]:
        assert f"error: {folder / name}: {reason}" in stderr
    assert f"ignored: {folder / 'notes.txt'}: not an image file" in stderr
    assert f"ignored: {folder / '.DS_Store'}: hidden" in stderr
    assert f"ignored: {folder / 'twin.png'}: the same file as {folder / 'good.png'}, done once" in stderr
    assert "3 restored, 0 already done, 0 without a face, 5 failed, 3 ignored" in stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["good.png", "linked.png", "x.jpg/inside.png"]


def test_a_folder_that_yields_nothing_says_so(tiny_checkpoint, tmp_path, capsys, model_never_loads):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no photos here")
    assert restore(tiny_checkpoint, empty, tmp_path / "texts", out=tmp_path / "out") == 1
    stderr = capsys.readouterr().err
    assert f"error: {empty}: no image files in this folder" in stderr
    assert f"error: {tmp_path / 'texts'}: no image files in this folder" in stderr


def test_two_inputs_that_would_share_an_output_are_refused(tiny_checkpoint, small_face, tmp_path, capsys):
    save_image(tmp_path / "x" / "a.jpg", small_face)
    save_image(tmp_path / "y" / "a.jpg", small_face)
    assert restore(tiny_checkpoint, tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.jpg", out=tmp_path / "out") == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())


def test_resume_says_when_the_recorded_settings_differ(tiny_checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=["--aligned"]) == 0
    capsys.readouterr()
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=["--aligned", "--steps", "3"]) == 0
    stderr = capsys.readouterr().err
    assert f"note: {out / 'a.png'} kept, made with other settings (num_inference_steps 2, now 3)" in stderr
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=["--aligned", "--seed", "none"]) == 0
    assert "other settings" not in capsys.readouterr().err  # a seed left to chance matches the recorded one
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=["--aligned", "--steps", "3", "--overwrite"]) == 0
    assert json.loads((out / "a.png.json").read_text())["settings"]["num_inference_steps"] == 3
    reference = str(photos / "a.png")
    with_reference = ["--aligned", "--steps", "3", "--reference", reference]
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=with_reference) == 0
    assert f"made with other settings (references [], now [{reference!r}])" in capsys.readouterr().err


def test_stale_temp_files_are_cleaned_and_outputs_follow_the_umask(tiny_checkpoint, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".a.png.{int(finished.stdout)}-k1ll3d00.tmp"  # a killed run's half-written output
    stale.write_bytes(b"half a png")
    previous = os.umask(0o027)
    try:
        assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=["--aligned"]) == 0
    finally:
        os.umask(previous)
    assert not stale.exists()
    assert stat.S_IMODE((out / "a.png").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "a.png.json").stat().st_mode) == 0o640


def test_whole_photo_sidecar_lists_faces_and_skips(tiny_checkpoint, shared_faces, tmp_path):
    photo = shared_faces / "whole" / "diffbir_Harry_Potter.jpg"
    extra = ["--select", "largest", "--upscale", "2"]
    assert restore(tiny_checkpoint, photo, out=tmp_path, extra=extra) == 0
    record = json.loads((tmp_path / "diffbir_Harry_Potter.jpg.json").read_text())
    source = load_rgb(photo)
    assert load_rgb(tmp_path / "diffbir_Harry_Potter.jpg").shape == (2 * source.shape[0], 2 * source.shape[1], 3)
    assert len(record["faces"]) == 1 and len(record["skipped_faces"]) == 2
    assert set(record["faces"][0]["box"]) >= {"left", "top", "right", "bottom"}


def test_bad_flag_value_exits_2_naming_it(tiny_checkpoint, photos, tmp_path, capsys):
    assert restore(tiny_checkpoint, photos, out=tmp_path / "out", extra=["--fidelity", "2"]) == 2
    assert "fidelity must be a number in [0, 1], got 2.0" in capsys.readouterr().err


def test_missing_model_exits_2_with_a_fix(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert main(["restore", str(photos), "-o", str(tmp_path / "out"), "--model", "nobody/nothing"]) == 2
    assert "--model" in capsys.readouterr().err


def test_fast_preset_then_explicit_flags():
    from authface_core.restore import RestoreConfig
    from authface_core.settings import settings_from_namespace

    args = parse_args(["restore", "x", "-o", "y", "--fast", "--steps", "24", "--seed", "none"])
    (config,) = settings_from_namespace(args, RestoreConfig)
    assert (config.scheduler, config.num_inference_steps, config.seed) == ("dpmpp", 24, None)
    assert np.isclose(config.guidance_scale, 8.0)
    (config,) = settings_from_namespace(parse_args(["restore", "x", "-o", "y", "--preset", "fast"]), RestoreConfig)
    assert (config.scheduler, config.num_inference_steps) == ("dpmpp", 20)


def test_settings_file_sets_defaults_and_flags_win(tmp_path, capsys):
    from authface_core.restore import RestoreConfig
    from authface_core.settings import settings_from_namespace

    config_file = tmp_path / "archive.yaml"
    config_file.write_text("num_inference_steps: 7\nfidelity: 0.3\nscheduler: unipc\n")
    args = parse_args(["restore", "x", "-o", "y", "--fast", "--config", str(config_file), "--fidelity", "0.5"])
    (config,) = settings_from_namespace(args, RestoreConfig)
    assert (config.num_inference_steps, config.fidelity, config.scheduler) == (7, 0.5, "unipc")
    config_file.write_text("stepz: 7\n")
    assert main(["restore", "x", "-o", "y", "--config", str(config_file)]) == 2
    assert "archive.yaml: unknown setting(s) stepz" in capsys.readouterr().err


def test_every_setting_is_a_flag_under_its_own_name():
    """No mapping table: each field of ModelConfig and RestoreConfig is the flag of the same name."""
    from authface_core.model_config import ModelConfig
    from authface_core.restore import RestoreConfig
    from authface_core.settings import describe_settings, settings_from_namespace

    parser_dests = vars(parse_args(["restore", "x", "-o", "y"]))
    for cls in (ModelConfig, RestoreConfig):
        assert set(describe_settings(cls)) <= set(parser_dests)
        (built,) = settings_from_namespace(parse_args(["restore", "x", "-o", "y"]), cls)
        assert built == cls()  # the flags' defaults are the dataclass's (RestoreConfig's: the released preset)


def test_model_flags_are_load_pipeline_keywords_and_low_memory_is_the_12gb_preset():
    import inspect

    from authface_core.model_config import ModelConfig
    from authface_core.pipeline.loading import load_pipeline
    from authface_core.settings import describe_settings, settings_from_namespace

    assert set(describe_settings(ModelConfig)) <= set(inspect.signature(load_pipeline).parameters)  # what load() passes
    (model,) = settings_from_namespace(parse_args(["restore", "x", "-o", "y", "--low-memory"]), ModelConfig)
    assert model.memory == "12gb"
    (model,) = settings_from_namespace(parse_args(["restore", "x", "-o", "y", "--memory", "8gb"]), ModelConfig)
    assert model.memory == "8gb"


def test_references_and_candidates_go_into_the_sidecar(tiny_checkpoint, photos, tmp_path, astronaut):
    reference = tmp_path / "refs" / "eileen.png"
    save_image(reference, astronaut)
    out = tmp_path / "out"
    extra = ["--aligned", "--candidates", "3", "--reference", f"eileen={reference}"]
    assert restore(tiny_checkpoint, photos / "a.png", out=out, extra=extra) == 0
    (face,) = json.loads((out / "a.png.json").read_text())["faces"]
    assert [candidate["index"] for candidate in face["candidates"]] == [0, 1, 2]
    assert sum(candidate["chosen"] for candidate in face["candidates"]) == 1
    assert len({candidate["seed"] for candidate in face["candidates"]}) == 3
    assert {"niqe", "distance", "basis"} <= set(face["candidates"][0])
    check = face["reference"]  # the tiny model paints noise: no face to verify
    assert check["verdict"] == "cannot verify" and check["references"][0]["file"] == str(reference)
    assert check["threshold"] == pytest.approx(0.64)
    assert restore(tiny_checkpoint, photos / "a.png", out=tmp_path / "out2", extra=["--reference", "nowhere.jpg"]) == 2
