"""Calibrate the authenticity thresholds of ``authface_core/authenticity.py`` on real photos.

    python bench/calibrate_identity.py [--faces ../shared/faces/identity] [-o bench/out/calibration]

Data: ``identity/<person>/*`` press photos (12 people). Each photo's largest face is aligned the
FFHQ way at 512 px; that clean crop stands for a *faithful* restoration. Each crop is degraded at
the strengths of :data:`authface_core.degradations.CALIBRATION_LEVELS` and plays the *input*.
For every degraded input the script measures:

- its NIQE (the input-quality gate) and whether dlib still finds the face;
- the dlib distance to its own clean crop (what a faithful restoration scores) and to the clean
  crops of every other person (what a restoration that drifted to someone else scores);
- the landmark shift to its own clean crop (how far landmarks move when nothing drifted).

From these it derives, and prints next to the constants in ``authenticity.py``:

- ``INPUT_NIQE_LIMIT``: the lowest input NIQE of the mildest level where the own-clean vs
  other-people's-clean ROC AUC falls under :data:`MIN_LEVEL_AUC` (or dlib misses over 5% of
  faces); at and above it an honest report says "cannot verify";
- ``DRIFT_DISTANCE``: the distance threshold with the best balanced accuracy on inputs under the gate;
- ``LANDMARK_SHIFT_LIMIT``: the 99th percentile of faithful landmark shifts under the gate.

It also reports the clean same-person vs different-person ROC AUC (photos of the same person
against photos of others), the check that the descriptor separates identities at all.
Writes ``calibration.json`` (every measurement) and ``calibration.md`` to the output folder;
``--reuse`` derives the constants again from a previous ``calibration.json`` without measuring.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from authface_core.authenticity import DRIFT_DISTANCE, INPUT_NIQE_LIMIT, LANDMARK_SHIFT_LIMIT  # noqa: E402
from authface_core.degradations import CALIBRATION_LEVELS, degrade_at_level  # noqa: E402
from authface_core.faces.align import align_face  # noqa: E402
from authface_core.faces.compare import EVAL_FACE_SIZE, landmark_distance, measure_face  # noqa: E402
from authface_core.faces.detect import detect_faces  # noqa: E402
from authface_core.faces.identity import DLIB_IDENTITY  # noqa: E402
from authface_core.io import atomic_write_bytes, list_images, load_rgb  # noqa: E402
from authface_core.metrics.stats import best_threshold, roc_auc  # noqa: E402
from authface_core.niqe import niqe  # noqa: E402

MIN_LEVEL_AUC = 0.98  # identity must still separate people this well for a verdict to be given
MIN_FOUND_SHARE = 0.95  # and dlib must still find the face in nearly every input
LANDMARK_PERCENTILE = 99


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--faces",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "faces" / "identity",
        help="folder with one sub-folder of photos per person",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=REPO_ROOT / "bench" / "out" / "calibration",
        help="output folder for calibration.json and calibration.md",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="re-derive the constants from OUT/calibration.json instead of measuring again",
    )
    return parser.parse_args(argv)


def load_clean_faces(folder: Path) -> list[dict]:
    """Align the largest face of every photo: [{person, photo, face (512, 512, 3), measurement}]."""
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    if not people:
        raise SystemExit(f"{folder}: no per-person sub-folders")
    faces = []
    photos = [(person.name, path) for person in people for path in list_images([person])]
    for person, path in tqdm(photos, desc="Aligning identity photos", unit="photo"):
        rgb = load_rgb(path)
        detected = detect_faces(rgb)
        if not detected:
            print(f"no face found in {path}: left out", file=sys.stderr)
            continue
        crop = align_face(rgb, detected[0], EVAL_FACE_SIZE).image
        measurement = measure_face(crop)
        if not measurement.found:
            print(f"no face found again in the aligned crop of {path}: left out", file=sys.stderr)
            continue
        faces.append({"person": person, "photo": str(path), "face": crop, "measurement": measurement})
    return faces


def clean_identity_separation(faces: list[dict]) -> dict:
    """Same-person vs different-person distances between clean photos, and their ROC AUC."""
    same, different = [], []
    for a, b in itertools.combinations(faces, 2):
        distance = DLIB_IDENTITY.distance(a["measurement"].descriptor, b["measurement"].descriptor)
        (same if a["person"] == b["person"] else different).append(distance)
    threshold, accuracy = best_threshold(same, different)
    return {
        "same_pairs": len(same),
        "different_pairs": len(different),
        "same_median": float(np.median(same)),
        "different_median": float(np.median(different)),
        "roc_auc": roc_auc(same, different),
        "best_threshold": threshold,
        "balanced_accuracy": accuracy,
    }


def measure_degraded_inputs(faces: list[dict]) -> list[dict]:
    """Every (face, level) as an input: NIQE, detection, distances to own and others' clean crops, landmark shift."""
    rows = []
    for index, item in enumerate(tqdm(faces, desc="Degrading and measuring", unit="face")):
        for level_index, level in enumerate(CALIBRATION_LEVELS):
            degraded = degrade_at_level(item["face"], level, seed=index)
            measurement = measure_face(degraded)
            row = {"person": item["person"], "level": level_index, "niqe": niqe(degraded), "found": measurement.found}
            if measurement.found:
                own = item["measurement"]
                row["own_distance"] = DLIB_IDENTITY.distance(measurement.descriptor, own.descriptor)
                row["other_distances"] = [
                    DLIB_IDENTITY.distance(measurement.descriptor, other["measurement"].descriptor)
                    for other in faces
                    if other["person"] != item["person"]
                ]
                row["landmark_shift"] = landmark_distance(measurement.face.landmarks, own.face.landmarks)
            rows.append(row)
    return rows


def separation(rows: list[dict]) -> tuple[float, float, float]:
    """(ROC AUC, best threshold, its balanced accuracy) of own vs other-person distances in ``rows``."""
    own = [r["own_distance"] for r in rows if r["found"]]
    others = [d for r in rows if r["found"] for d in r["other_distances"]]
    if not own or not others:
        return float("nan"), float("nan"), float("nan")
    return (roc_auc(own, others), *best_threshold(own, others))


def choose_niqe_limit(rows: list[dict]) -> float:
    """The lowest input NIQE of the first (mildest) degradation level at which identity fails: own vs
    others ROC AUC under MIN_LEVEL_AUC or dlib missing faces (found under MIN_FOUND_SHARE). Inputs
    that degraded cannot be judged, so the gate sits at the first of them."""
    for level_index in range(len(CALIBRATION_LEVELS)):
        level_rows = [r for r in rows if r["level"] == level_index]
        found_share = np.mean([r["found"] for r in level_rows])
        if separation(level_rows)[0] < MIN_LEVEL_AUC or found_share < MIN_FOUND_SHARE:
            return float(min(r["niqe"] for r in level_rows))
    return float(max(r["niqe"] for r in rows))


def per_level_table(rows: list[dict]) -> list[dict]:
    table = []
    for level_index, level in enumerate(CALIBRATION_LEVELS):
        level_rows = [r for r in rows if r["level"] == level_index]
        found = [r for r in level_rows if r["found"]]
        auc, threshold, accuracy = separation(level_rows)
        table.append(
            {
                "level": level,
                "niqe_median": float(np.median([r["niqe"] for r in level_rows])),
                "niqe_range": [float(min(r["niqe"] for r in level_rows)), float(max(r["niqe"] for r in level_rows))],
                "found": f"{len(found)}/{len(level_rows)}",
                "own_distance_median": float(np.median([r["own_distance"] for r in found])) if found else None,
                "other_distance_median": (
                    float(np.median([d for r in found for d in r["other_distances"]])) if found else None
                ),
                "auc_own_vs_others": auc,
                "landmark_shift_median": float(np.median([r["landmark_shift"] for r in found])) if found else None,
            }
        )
    return table


def _format_or_na(value: float | None, digits: int = 3) -> str:
    """A table cell: the value rounded, or "n/a" where no face was found at that level."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(result: dict) -> str:
    clean = result["clean"]
    lines = [
        "## Identity calibration",
        "",
        f"{result['faces']} aligned faces of {result['people']} people ({result['left_out']} photos left out).",
        f"Clean photos, same person vs different person: ROC AUC {clean['roc_auc']:.3f} "
        f"({clean['same_pairs']} / {clean['different_pairs']} pairs, median distance {clean['same_median']:.3f} "
        f"vs {clean['different_median']:.3f}; best threshold {clean['best_threshold']:.3f}, "
        f"balanced accuracy {clean['balanced_accuracy']:.3f}).",
        "",
        "| degradation (down x, blur, noise, JPEG q) | input NIQE median [range] | face found | distance to own clean "
        "| to others' clean | own vs others AUC | landmark shift px |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in result["levels"]:
        lo, hi = row["niqe_range"]
        lines.append(
            f"| {row['level']} | {row['niqe_median']:.2f} [{lo:.2f}, {hi:.2f}] | {row['found']} | "
            f"{_format_or_na(row['own_distance_median'])} | {_format_or_na(row['other_distance_median'])} | "
            f"{_format_or_na(row['auc_own_vs_others'])} | {_format_or_na(row['landmark_shift_median'], 2)} |"
        )
    derived, current = result["derived"], result["current_constants"]
    lines += ["", "| constant | derived here | in authenticity.py |", "|---|---:|---:|"]
    lines += [f"| {name} | {derived[name]:.3f} | {current[name]:.3f} |" for name in derived]
    gated = result["gated"]
    lines.append(
        f"\nInputs under the NIQE gate: {gated['inputs']} of {gated['all_inputs']}; own vs others ROC AUC "
        f"{gated['auc']:.3f}, balanced accuracy at the derived DRIFT_DISTANCE {gated['balanced_accuracy']:.3f}."
    )
    return "\n".join(lines) + "\n"


def measure(folder: Path) -> dict:
    """The expensive part: align, describe, degrade and describe again every photo of ``folder``."""
    photos = [p for person in folder.iterdir() if person.is_dir() for p in list_images([person])]
    faces = load_clean_faces(folder)
    return {
        "faces": len(faces),
        "people": len({f["person"] for f in faces}),
        "left_out": len(photos) - len(faces),
        "clean": clean_identity_separation(faces),
        "inputs": measure_degraded_inputs(faces),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reuse:
        measured = json.loads((args.out / "calibration.json").read_text())
    else:
        measured = measure(args.faces)
    clean, rows = measured["clean"], measured["inputs"]
    print(f"clean same/different person ROC AUC: {clean['roc_auc']:.4f}")
    niqe_limit = choose_niqe_limit(rows)
    gated = [r for r in rows if r["niqe"] < niqe_limit]
    gated_auc, drift_distance, gated_accuracy = separation(gated)
    shifts = [r["landmark_shift"] for r in gated if r["found"]]
    result = {
        **{key: measured[key] for key in ("faces", "people", "left_out", "clean")},
        "levels": per_level_table(rows),
        "derived": {
            "INPUT_NIQE_LIMIT": niqe_limit,
            "DRIFT_DISTANCE": drift_distance,
            "LANDMARK_SHIFT_LIMIT": float(np.percentile(shifts, LANDMARK_PERCENTILE)),
        },
        "current_constants": {
            "INPUT_NIQE_LIMIT": INPUT_NIQE_LIMIT,
            "DRIFT_DISTANCE": DRIFT_DISTANCE,
            "LANDMARK_SHIFT_LIMIT": LANDMARK_SHIFT_LIMIT,
        },
        "gated": {"inputs": len(gated), "all_inputs": len(rows), "auc": gated_auc, "balanced_accuracy": gated_accuracy},
        "inputs": rows,
    }
    markdown = render_markdown(result)
    atomic_write_bytes(args.out / "calibration.json", (json.dumps(result, indent=2) + "\n").encode())
    atomic_write_bytes(args.out / "calibration.md", markdown.encode())
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
