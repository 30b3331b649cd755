"""Ingest: matched, unmatched, duplicate, corrupt and unsupported files, and nothing read outside the folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from authface_core.annotation.ingest import (
    OUTSIDE_FOLDER,
    NamingRule,
    hash_distance,
    ingest_folder,
    sha256_file,
)
from authface_core.errors import PairingError

from .conftest import make_pairs_folder, photo


def _names(paths):
    return sorted(Path(path).name for path in paths)


def test_ingest_reports_every_file(pairs_folder, preview_cache):
    before = {path: path.stat().st_mtime_ns for path in pairs_folder.rglob("*") if path.is_file()}
    hashes = {path: sha256_file(path) for path in before}

    report = ingest_folder(pairs_folder, preview_cache)

    matched = sorted((Path(p.original_path).name, Path(p.retouched_path).name) for p in report.pairs)
    assert ("coffee.png", "coffee_retouched.tif") in matched
    assert ("mono.png", "mono_retouched.png") in matched
    # a byte-identical copy of a pair is the same pair: kept once, reported as a duplicate
    copies = [("copy_of_first.png", "copy_of_first_retouched.jpg"), ("astronaut.png", "astronaut_retouched.jpg")]
    assert len(set(copies) & set(matched)) == 1
    assert ("reexport.jpg", "reexport_retouched.jpg") in matched
    assert len(matched) == 6 + 2
    # the retouch of the corrupt original is listed too, not dropped
    assert _names(report.unmatched) == ["broken_retouched.jpg", "lonely.jpg", "orphan_retouched.png"]
    assert _names(report.unsupported) == ["notes.txt", "web.webp"]
    assert [(path, "corrupt" in reason) for path, reason in report.rejected] == [("broken.png", True)]
    assert not any("broken" in p.original_path for p in report.pairs)

    exact = [g for g in report.duplicates if g.kind == "exact"]
    assert sorted(_names(g.paths) for g in exact) == [
        ["astronaut.png", "copy_of_first.png"],
        ["astronaut_retouched.jpg", "copy_of_first_retouched.jpg"],
    ]
    near = {tuple(_names(g.paths)) for g in report.duplicates if g.kind == "near"}
    assert ("coffee.png", "reexport.jpg") in near
    # an original and its own retouch are not reported as duplicates
    assert ("chelsea.png", "chelsea_retouched.jpg") not in near
    by_original = {Path(p.original_path).name: p for p in report.pairs}
    assert by_original["reexport.jpg"].facts["duplicate_of"] == [by_original["coffee.png"].pair_id]
    assert by_original["rocket.jpg"].facts["duplicate_of"] == []

    # facts read from the files themselves
    mono = by_original["mono.png"].facts
    assert mono["original"]["bit_depth"] == 16 and mono["original"]["format"] == "PNG"
    tif = by_original["coffee.png"].facts["retouched"]
    assert (tif["format"], tif["bit_depth"], tif["width"]) == ("TIFF", 8, 600)
    assert "sRGB" in tif["icc_profile"]
    assert by_original["coffee.png"].facts["original"]["icc_profile"] is None
    assert by_original["chelsea.png"].original_sha256 == hashes[pairs_folder / "chelsea.png"]

    # originals never modified
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert {path: sha256_file(path) for path in before} == hashes


def test_pair_ids_are_stable_and_previews_cached(pairs_folder, preview_cache):
    first = ingest_folder(pairs_folder, preview_cache)
    cached = sorted(preview_cache.root.rglob("*.jpg"))
    second = ingest_folder(pairs_folder, preview_cache)
    assert [p.pair_id for p in first.pairs] == [p.pair_id for p in second.pairs]
    assert cached and sorted(preview_cache.root.rglob("*.jpg")) == cached


def test_perceptual_hash_tells_photos_apart(pairs_folder, preview_cache):
    report = ingest_folder(pairs_folder, preview_cache)
    facts = {Path(p.original_path).name: p.facts["original"]["phash"] for p in report.pairs}
    assert hash_distance(facts["astronaut.png"], facts["chelsea.png"]) > 16
    assert hash_distance(facts["coffee.png"], facts["reexport.jpg"]) <= 8


def test_pairs_csv(pairs_folder, preview_cache, tmp_path):
    table = tmp_path / "pairs.csv"  # an uploaded CSV: its rows name files inside the folder
    table.write_text(f"original,retouched\nlonely.jpg,{pairs_folder / 'orphan_retouched.png'}\n")
    report = ingest_folder(pairs_folder, preview_cache, pairs_csv=table)
    assert [(Path(p.original_path).name, Path(p.retouched_path).name) for p in report.pairs] == [
        ("lonely.jpg", "orphan_retouched.png")
    ]
    assert "astronaut.png" in _names(report.unmatched)


def test_csv_rows_leading_out_of_the_folder_are_refused_without_saying_if_they_exist(
    clean_pairs_folder, preview_cache, tmp_path
):
    """The attack of issue 10: a CSV naming another customer's photo under /tmp, or /etc/shadow."""
    elsewhere = tmp_path / "other-customer"
    elsewhere.mkdir()
    Image.new("RGB", (64, 64), "red").save(elsewhere / "secret.png")
    table = tmp_path / "pairs.csv"
    rows = [
        f"{elsewhere / 'secret.png'},astronaut_retouched.jpg",  # exists, outside
        f"{elsewhere / 'missing.png'},astronaut_retouched.jpg",  # does not exist, outside
        "/etc/shadow,astronaut_retouched.jpg",
        "../other-customer/secret.png,astronaut_retouched.jpg",  # relative, climbing out
        "astronaut.png,astronaut_retouched.jpg",  # inside: fine
    ]
    table.write_text("original,retouched\n" + "\n".join(rows) + "\n")
    report = ingest_folder(clean_pairs_folder, preview_cache, pairs_csv=table)
    assert [Path(p.original_path).name for p in report.pairs] == ["astronaut.png"]
    assert [what for what, _ in report.rejected] == [
        f"pairs.csv:2: {elsewhere / 'secret.png'}",
        f"pairs.csv:3: {elsewhere / 'missing.png'}",
        "pairs.csv:4: /etc/shadow",
        "pairs.csv:5: ../other-customer/secret.png",
    ]
    assert {reason for _, reason in report.rejected} == {OUTSIDE_FOLDER}  # the same words, existing or not
    # nothing of the outside file was read: no preview of it in the cache
    assert len(list(preview_cache.root.rglob("*.jpg"))) == 2


def test_links_leading_out_of_the_folder_are_not_followed(tmp_path, preview_cache):
    folder = tmp_path / "shoot"
    make_pairs_folder(folder, photos=("astronaut.png",))
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.new("RGB", (64, 64), "red").save(secret / "x_retouched.png")
    Image.new("RGB", (64, 64), "blue").save(secret / "x.png")
    (folder / "x.png").symlink_to(secret / "x.png")
    (folder / "x_retouched.png").symlink_to(secret / "x_retouched.png")
    (folder / "linked").symlink_to(secret, target_is_directory=True)
    report = ingest_folder(folder, preview_cache)
    assert [Path(p.original_path).name for p in report.pairs] == ["astronaut.png"]
    assert sorted(report.rejected) == [
        ("linked", "a linked folder; links to folders are not followed"),
        ("x.png", OUTSIDE_FOLDER),
        ("x_retouched.png", OUTSIDE_FOLDER),
    ]


def test_bad_rules_and_csv_are_refused(tmp_path, preview_cache):
    with pytest.raises(PairingError, match="must differ"):
        NamingRule(original_suffix="_x", retouched_suffix="_x")
    table = tmp_path / "pairs.csv"
    table.write_text("before,after\na.jpg,b.jpg\n")
    with pytest.raises(PairingError, match="pairs.csv: needs columns"):
        ingest_folder(tmp_path, preview_cache, pairs_csv=table)
    with pytest.raises(PairingError, match="not a folder"):
        ingest_folder(tmp_path / "missing", preview_cache)


def test_the_report_says_each_problem_once_on_one_line_with_names_escaped(pairs_folder, preview_cache, tmp_path):
    from authface_core.annotation.session import ingest_report_markdown

    report = ingest_folder(pairs_folder, preview_cache)
    text = ingest_report_markdown(report, len(report.pairs))
    duplicates = text.split("**Duplicates**")[1].strip().splitlines()[1:]
    assert duplicates == [
        "- copy\\_of\\_first.png and its retouch: exact copies of pair astronaut.png, merged into it (reviewed once)",
        "- pair coffee.png = pair reexport.jpg: the same photo (near duplicates, 0 bits apart)",
    ]  # not one line per matching file: four files of two pairs matched, and a copy matched its own retouch
    # a name with markdown and HTML in it shows as itself: no table cell split, no tag
    odd = tmp_path / "odd"
    odd.mkdir()
    photo("rocket").save(odd / "a|b <img src=x onerror=alert(1)>.png", format="PNG")
    text = ingest_report_markdown(ingest_folder(odd, preview_cache), 0)
    assert "a\\|b \\<img src=x onerror=alert\\(1\\)\\>.png" in text
    assert not re.search(r"(?<!\\)[<|]", text.replace("**", "")), text  # every "<" and "|" escaped
