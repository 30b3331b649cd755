"""``python -m authface_core faces``: JSON per image, aligned crops, bad files reported and skipped."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from tests.conftest import REPO_ROOT


def run_cli(*args, command="faces"):
    return subprocess.run(
        [sys.executable, "-m", "authface_core", command, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )


def test_faces_cli_reports_faces_saves_crops_and_skips_bad_files(tmp_path, astronaut):
    photo = tmp_path / "astronaut photo.png"  # a name with a space, as real data has
    Image.fromarray(astronaut).save(photo)
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    crops = tmp_path / "crops"
    result = run_cli(str(photo), str(bad), "--json", "--save-aligned", str(crops))
    assert result.returncode == 1, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 1 and reports[0]["width"] == 512
    main = reports[0]["faces"][0]
    assert main["selected"] and len(main["landmarks5"]) == 5
    assert Image.open(main["aligned"]).size == (512, 512)
    assert "broken.jpg: not an image file" in result.stderr


def test_faces_cli_selection_and_folders(tmp_path, shared_faces):
    result = run_cli(str(shared_faces / "whole"), "--json", "--select", "largest")
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 11
    for report in reports:
        assert sum(face["selected"] for face in report["faces"]) == 1
        skipped = [face for face in report["faces"] if not face["selected"]]
        assert all(face["skipped_because"] == "not the largest face" for face in skipped)


def test_faces_cli_says_when_a_photo_has_no_face(tmp_path):
    from skimage import data

    photo = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    result = run_cli(str(photo))
    assert result.returncode == 0, result.stderr  # no face is a result, not a failure
    assert f"{photo}: no face found" in result.stdout
    as_json = json.loads(run_cli(str(photo), "--json").stdout)
    assert as_json["faces"] == []


def test_crops_of_same_named_photos_never_collide_and_originals_stay(tmp_path, astronaut, capsys):
    from authface_core.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "a.jpg", quality=95)
    Image.fromarray(astronaut).save(folder / "a.png")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    crops = folder / "crops"  # inside the input folder: left out of the search
    assert main(["faces", str(folder), "--save-aligned", str(crops), "--size", "256", "--select", "largest"]) == 0
    assert sorted(p.name for p in crops.iterdir()) == ["a.jpg.face00.png", "a.png.face00.png"]
    assert Image.open(crops / "a.png.face00.png").size == (256, 256)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before
    assert main(["faces", str(folder), "--save-aligned", str(folder)]) == 2  # would write among the originals
    assert "the output folder is, or contains, the input" in capsys.readouterr().err


def test_faces_flags_come_from_the_settings_with_the_old_short_names():
    from authface_core.cli import parse_args
    from authface_core.cli.faces import FacesSettings
    from authface_core.settings import settings_from_namespace

    args = parse_args(["faces", "x.jpg", "--select", "largest", "--min-size", "40", "--size", "1024"])
    assert settings_from_namespace(args, FacesSettings)[0] == FacesSettings(
        face_selection="largest", min_face_size=40, face_size=1024
    )
