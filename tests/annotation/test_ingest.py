"""Ingest on real photos: matched, unmatched, duplicate, corrupt and unsupported files."""

from __future__ import annotations

from pathlib import Path

import pytest

from authface_core.annotation.ingest import (
    NamingRule,
    hash_distance,
    ingest_folder,
    sha256_file,
)
from authface_core.errors import PairingError


def _names(paths):
    return sorted(Path(path).name for path in paths)


def test_ingest_reports_every_file(pairs_folder, preview_cache):
    before = {path: path.stat().st_mtime_ns for path in pairs_folder.rglob("*") if path.is_file()}
    hashes = {path: sha256_file(path) for path in before}

    report = ingest_folder(pairs_folder, preview_cache)

    matched = sorted((Path(p.original_path).name, Path(p.retouched_path).name) for p in report.pairs)
    assert ("gpen_ffhq_00007.png", "gpen_ffhq_00007_retouched.tif") in matched
    assert ("mono.png", "mono_retouched.png") in matched
    # a byte-identical copy of a pair is the same pair: kept once, reported as a duplicate
    copies = [
        ("copy_of_first.png", "copy_of_first_retouched.jpg"),
        ("gpen_ffhq_00006.png", "gpen_ffhq_00006_retouched.jpg"),
    ]
    assert len(set(copies) & set(matched)) == 1
    assert ("reexport.jpg", "reexport_retouched.jpg") in matched
    assert len(matched) == 6 + 2
    # the retouch of the corrupt original is listed too, not dropped
    assert _names(report.unmatched) == ["broken_retouched.jpg", "lonely.jpg", "orphan_retouched.png"]
    assert _names(report.unsupported) == ["notes.txt", "web.webp"]
    assert [(Path(path).name, "corrupt" in reason) for path, reason in report.rejected] == [("broken.png", True)]
    assert not any("broken" in p.original_path for p in report.pairs)

    exact = [g for g in report.duplicates if g.kind == "exact"]
    assert sorted(_names(g.paths) for g in exact) == [
        ["copy_of_first.png", "gpen_ffhq_00006.png"],
        ["copy_of_first_retouched.jpg", "gpen_ffhq_00006_retouched.jpg"],
    ]
    near = {tuple(_names(g.paths)) for g in report.duplicates if g.kind == "near"}
    assert ("gpen_ffhq_00007.png", "reexport.jpg") in near
    # an original and its own retouch are not reported as duplicates
    assert ("gpen_ffhq_00008.png", "gpen_ffhq_00008_retouched.jpg") not in near
    by_original = {Path(p.original_path).name: p for p in report.pairs}
    assert by_original["reexport.jpg"].facts["duplicate_of"] == [by_original["gpen_ffhq_00007.png"].pair_id]
    assert by_original["ddnm_00234.png"].facts["duplicate_of"] == []

    # facts read from the files themselves
    mono = by_original["mono.png"].facts
    assert mono["original"]["bit_depth"] == 16 and mono["original"]["format"] == "PNG"
    tif = by_original["gpen_ffhq_00007.png"].facts["retouched"]
    assert (tif["format"], tif["bit_depth"], tif["width"]) == ("TIFF", 8, 1024)
    assert "sRGB" in tif["icc_profile"]
    assert by_original["gpen_ffhq_00007.png"].facts["original"]["icc_profile"] is None
    assert by_original["gpen_ffhq_00008.png"].original_sha256 == hashes[pairs_folder / "gpen_ffhq_00008.png"]

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
    assert hash_distance(facts["gpen_ffhq_00008.png"], facts["ddnm_00234.png"]) > 16
    assert hash_distance(facts["gpen_ffhq_00007.png"], facts["reexport.jpg"]) <= 8


def test_pairs_csv(pairs_folder, preview_cache, tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text(f"original,retouched\n{pairs_folder / 'lonely.jpg'},{pairs_folder / 'orphan_retouched.png'}\n")
    report = ingest_folder(pairs_folder, preview_cache, pairs_csv=table)
    assert [(Path(p.original_path).name, Path(p.retouched_path).name) for p in report.pairs] == [
        ("lonely.jpg", "orphan_retouched.png")
    ]
    assert "gpen_ffhq_00006.png" in _names(report.unmatched)


def test_bad_rules_and_csv_are_refused(tmp_path, preview_cache):
    with pytest.raises(PairingError, match="must differ"):
        NamingRule(original_suffix="_x", retouched_suffix="_x")
    table = tmp_path / "pairs.csv"
    table.write_text("before,after\na.jpg,b.jpg\n")
    with pytest.raises(PairingError, match="pairs.csv: needs columns"):
        ingest_folder(tmp_path, preview_cache, pairs_csv=table)
    with pytest.raises(PairingError, match="not a folder"):
        ingest_folder(tmp_path / "missing", preview_cache)
