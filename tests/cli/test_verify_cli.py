"""``python -m authface_core verify``: verdicts per face of real photos against named references, bad files."""

from __future__ import annotations

import json

from PIL import Image

from authface_core.io import load_rgb
from tests.cli.test_faces_cli import run_cli
from tests.test_references import side_by_side


def test_verify_json_on_real_photos(tmp_path, shared_faces):
    identity = shared_faces / "identity"
    pair = tmp_path / "obama and biden.png"
    Image.fromarray(
        side_by_side(load_rgb(identity / "obama" / "obama.jpg"), load_rgb(identity / "biden" / "biden.jpg"))
    ).save(pair)
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    stranger = identity / "matt_damon" / "img29.jpg"
    result = run_cli(
        str(pair),
        str(stranger),
        str(bad),
        "--json",
        "--reference",
        f"obama={identity / 'obama' / 'obama1.jpg'}",
        "--reference",
        f"biden={identity / 'biden' / 'biden2.jpg'}",
        command="verify",
    )
    assert result.returncode == 1, result.stderr  # the broken file failed, the others were done
    assert "broken.jpg: not an image file" in result.stderr
    reports = {report["file"]: report for report in map(json.loads, result.stdout.splitlines())}
    assert set(reports) == {str(pair), str(stranger)}
    left, right = reports[str(pair)]["faces"]
    for face in (left, right):
        assert {"index", "box", "person", "distance", "verdict", "threshold", "references"} <= set(face)
        assert [ref["person"] for ref in face["references"]] == ["obama", "biden"]
    assert (left["index"], left["person"], left["verdict"]) == (0, "obama", "same person")
    assert (right["index"], right["person"], right["verdict"]) == (1, "biden", "same person")
    assert left["box"]["right"] < right["box"]["left"]
    assert left["distance"] == left["references"][0]["distance"] < left["threshold"]
    (face,) = reports[str(stranger)]["faces"]
    assert (face["person"], face["verdict"]) == (None, "different person")
    assert face["distance"] > face["threshold"]


def test_verify_text_output_and_an_unreadable_reference(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    result = run_cli(str(photo), "--reference", str(photo), command="verify")
    assert result.returncode == 0, result.stderr
    assert f"{photo}: 1 face(s)" in result.stdout and "#0 same person as reference: distance 0.00" in result.stdout
    missing = tmp_path / "nowhere.jpg"
    result = run_cli(str(photo), "--reference", f"anna={missing}", command="verify")
    assert result.returncode == 2 and "nowhere.jpg" in result.stderr
