"""Calibrate and check the reference-photo verdicts of ``authface_core/references.py`` on real photos.

    python bench/reference_identity.py [--faces ../shared/faces/identity] [-o bench/out/references] [--reuse]

Data: ``identity/<person>/*`` press photos (12 people). Each photo's largest face is aligned the FFHQ way at
512 px (as ``bench/calibrate_identity.py`` does); that clean crop is the *probe*. Each photo also gives a
reference embedding from the whole photo, as ``--reference`` does.

Three checks of the same probes, side by side:

- **references, restored**: the probe's own clean crop stands in for a faithful restoration (there are no
  real weights here, so no real restoration: a real one can only be further from the person). Its
  references are K (1 or 3) *other* photos of the same person (genuine trial: "same person" is right) or
  K photos of each other person with at least K photos (impostor trials: "different person" is right),
  drawn with a fixed seed. The verdict is ``references.check_faces``'s, at :data:`REFERENCE_DISTANCE`.
  It does not depend on the degradation (the restoration is what is checked, not the input).
- **references, unrestored**: the same, with the *degraded* probe checked (a restorer that did nothing), at
  each level of :data:`authface_core.degradations.REFERENCE_LEVELS`.
- **input-based** (today's authenticity report, ``authenticity.input_based_verdict``): the degraded probe is
  the input; the faithful restoration is its own clean crop (genuine: "same person" is right), a drifted one
  any other person's clean crop (impostor: "identity drifted" is right).

Rates are per class (genuine / impostor): correct verdicts, "cannot verify", and confident wrong verdicts
(a verdict given, and wrong). AUC is same-person vs other-person distance where both faces were found.
The threshold derived is the cut with the best balanced accuracy between genuine and impostor mean distances
of the restored trials (K = 1 and 3 together). Writes ``references.json`` and ``references.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from authface_core.authenticity import CANNOT_VERIFY as INPUT_CANNOT_VERIFY  # noqa: E402
from authface_core.authenticity import DRIFTED, input_based_verdict  # noqa: E402
from authface_core.authenticity import SAME_PERSON as INPUT_SAME  # noqa: E402
from authface_core.degradations import REFERENCE_LEVELS, degrade_at_level  # noqa: E402
from authface_core.faces.compare import measure_face  # noqa: E402
from authface_core.faces.identity import DLIB_IDENTITY  # noqa: E402
from authface_core.io import atomic_write_bytes, load_image  # noqa: E402
from authface_core.metrics.stats import best_threshold, roc_auc  # noqa: E402
from authface_core.niqe import niqe_or_none  # noqa: E402
from authface_core.references import (  # noqa: E402
    CANNOT_VERIFY,
    DIFFERENT_PERSON,
    REFERENCE_DISTANCE,
    SAME_PERSON,
    Reference,
    check_faces,
    embed_reference,
    mean_distances,
)
from bench.calibrate_identity import load_clean_faces  # noqa: E402

REFERENCE_COUNTS = (1, 3)
SEED = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=REPO_ROOT.parent / "shared" / "faces" / "identity")
    parser.add_argument("-o", "--out", type=Path, default=REPO_ROOT / "bench" / "out" / "references")
    parser.add_argument("--reuse", action="store_true", help="analyse OUT/references.json again without measuring")
    return parser.parse_args(argv)


def _listed(embedding: np.ndarray | None) -> list[float] | None:
    return None if embedding is None else [float(x) for x in embedding]


def measure(folder: Path) -> dict:
    """Embeddings of every photo (whole photo, clean aligned crop, degraded crop per level) and input NIQE."""
    faces = load_clean_faces(folder)
    probes = []
    for index, item in enumerate(tqdm(faces, desc="Degrading and measuring", unit="face")):
        reference = embed_reference(load_image(item["photo"]), person=item["person"])
        levels = []
        for level in REFERENCE_LEVELS:
            degraded = degrade_at_level(item["face"], level, seed=index)
            levels.append({"embedding": _listed(measure_face(degraded).descriptor), "niqe": niqe_or_none(degraded)})
        probes.append(
            {
                "person": item["person"],
                "photo": item["photo"],
                "reference": _listed(reference.embedding),
                "clean": _listed(item["measurement"].descriptor),
                "clean_niqe": niqe_or_none(item["face"]),
                "levels": levels,
            }
        )
    return {"probes": probes, "levels": [list(level) for level in REFERENCE_LEVELS]}


def reference_trials(probes: list[dict], count: int, rng: np.random.Generator) -> list[dict]:
    """Per probe with ``count`` other photos of its person: one genuine trial (``count`` of them) and one
    impostor trial per other person with ``count`` photos (``count`` of theirs)."""
    by_person: dict[str, list[int]] = {}
    for index, probe in enumerate(probes):
        if probe["reference"] is not None:
            by_person.setdefault(probe["person"], []).append(index)
    trials = []
    for index, probe in enumerate(probes):
        own = [j for j in by_person.get(probe["person"], []) if j != index]
        if len(own) < count:
            continue
        trials.append({"probe": index, "refs": rng.choice(own, count, replace=False).tolist(), "genuine": True})
        for person, photos in by_person.items():
            if person != probe["person"] and len(photos) >= count:
                trials.append(
                    {"probe": index, "refs": rng.choice(photos, count, replace=False).tolist(), "genuine": False}
                )
    return trials


def _array(values: list[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values)


def judge_reference_trials(probes: list[dict], trials: list[dict], face_of, threshold: float) -> list[dict]:
    """Each trial's verdict and mean distance, the face checked being ``face_of(probe)``: (its embedding or None,
    its NIQE)."""
    judged = []
    for trial in trials:
        references = [
            Reference(probes[j]["person"], probes[j]["photo"], None, _array(probes[j]["reference"]))
            for j in trial["refs"]
        ]
        embedding, niqe = face_of(probes[trial["probe"]])
        embedding = _array(embedding)
        (check,) = check_faces([embedding], references, niqes=[niqe], threshold=threshold)
        means = mean_distances(embedding, references)
        distance = next(iter(means.values()), None)
        judged.append({"genuine": trial["genuine"], "verdict": check.verdict, "distance": distance})
    return judged


def input_trials(probes: list[dict], level_index: int) -> list[dict]:
    """Today's input-based check at one level: the degraded probe against its own and others' clean crops."""
    judged = []
    for index, probe in enumerate(probes):
        level = probe["levels"][level_index]
        degraded = _array(level["embedding"])
        for other_index, other in enumerate(probes):
            genuine = other_index == index
            if not genuine and other["person"] == probe["person"]:
                continue
            if degraded is None:
                verdict, distance = INPUT_CANNOT_VERIFY, None
            else:
                distance = DLIB_IDENTITY.distance(degraded, _array(other["clean"]))
                verdict = input_based_verdict(level["niqe"], distance)
            judged.append({"genuine": genuine, "verdict": verdict, "distance": distance})
    return judged


def summarise(judged: list[dict], right: tuple[str, str], cannot: str) -> dict:
    """Per class (genuine, impostor) rates of right, cannot-verify and confident wrong verdicts, and the AUC."""
    summary = {}
    for name, genuine, correct in (("genuine", True, right[0]), ("impostor", False, right[1])):
        verdicts = [t["verdict"] for t in judged if t["genuine"] is genuine]
        summary[name] = {
            "trials": len(verdicts),
            "correct": float(np.mean([v == correct for v in verdicts])),
            "cannot_verify": float(np.mean([v == cannot for v in verdicts])),
            "confident_wrong": float(np.mean([v not in (correct, cannot) for v in verdicts])),
        }
    same = [t["distance"] for t in judged if t["genuine"] and t["distance"] is not None]
    other = [t["distance"] for t in judged if not t["genuine"] and t["distance"] is not None]
    summary["auc"] = roc_auc(same, other) if same and other else float("nan")
    summary["found_share"] = (len(same) + len(other)) / len(judged)
    return summary


def _level_name(level: list[float]) -> str:
    down, blur, noise, quality = level
    return f"x{down:g} (blur {blur:g}, noise {noise:g}, q{quality})"


def analyse(measured: dict) -> dict:
    probes = measured["probes"]
    reference_right, input_right = (SAME_PERSON, DIFFERENT_PERSON), (INPUT_SAME, DRIFTED)
    trials = {count: reference_trials(probes, count, np.random.default_rng(SEED)) for count in REFERENCE_COUNTS}
    restored = {
        count: judge_reference_trials(
            probes, trials[count], lambda p: (p["clean"], p["clean_niqe"]), REFERENCE_DISTANCE
        )
        for count in REFERENCE_COUNTS
    }
    genuine = [t["distance"] for count in REFERENCE_COUNTS for t in restored[count] if t["genuine"]]
    impostor = [t["distance"] for count in REFERENCE_COUNTS for t in restored[count] if not t["genuine"]]
    threshold, accuracy = best_threshold(genuine, impostor)
    rows = [
        {
            "level": "any",
            "check": "references, restored",
            "refs": count,
            **summarise(restored[count], reference_right, CANNOT_VERIFY),
        }
        for count in REFERENCE_COUNTS
    ]
    for level_index, level in enumerate(measured["levels"]):
        name = _level_name(level)
        for count in REFERENCE_COUNTS:
            judged = judge_reference_trials(
                probes,
                trials[count],
                lambda p, i=level_index: (p["levels"][i]["embedding"], p["levels"][i]["niqe"]),
                REFERENCE_DISTANCE,
            )
            rows.append(
                {
                    "level": name,
                    "check": "references, unrestored",
                    "refs": count,
                    **summarise(judged, reference_right, CANNOT_VERIFY),
                }
            )
        judged = input_trials(probes, level_index)
        rows.append(
            {
                "level": name,
                "check": "input-based (today)",
                "refs": 0,
                **summarise(judged, input_right, INPUT_CANNOT_VERIFY),
            }
        )
    return {
        "probes": len(probes),
        "people": len({p["person"] for p in probes}),
        "derived_threshold": threshold,
        "derived_balanced_accuracy": accuracy,
        "reference_distance": REFERENCE_DISTANCE,
        "genuine_median": float(np.median(genuine)),
        "impostor_median": float(np.median(impostor)),
        "rows": rows,
    }


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def render_markdown(result: dict) -> str:
    lines = [
        f"{result['probes']} probes of {result['people']} people. Restored trials (K = 1 and 3): mean distance to "
        f"the references, same person median {result['genuine_median']:.3f}, "
        f"other person {result['impostor_median']:.3f}; "
        f"best cut {result['derived_threshold']:.3f} (balanced accuracy {result['derived_balanced_accuracy']:.3f}); "
        f"verdicts below at REFERENCE_DISTANCE = {result['reference_distance']:.3f}.",
        "",
        "| level | check | refs | trials gen / imp | correct % gen / imp | cannot verify % gen / imp "
        "| confident wrong % gen / imp | AUC | face found % |",
        "|---|---|---:|---|---|---|---|---:|---:|",
    ]
    for row in result["rows"]:
        gen, imp = row["genuine"], row["impostor"]
        lines.append(
            f"| {row['level']} | {row['check']} | {row['refs'] or '-'} | {gen['trials']} / {imp['trials']} | "
            f"{_percent(gen['correct'])} / {_percent(imp['correct'])} | "
            f"{_percent(gen['cannot_verify'])} / {_percent(imp['cannot_verify'])} | "
            f"{_percent(gen['confident_wrong'])} / {_percent(imp['confident_wrong'])} | {row['auc']:.3f} | "
            f"{_percent(row['found_share'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.out / "references.json"
    measured = json.loads(path.read_text())["measured"] if args.reuse else measure(args.faces)
    result = analyse(measured)
    markdown = render_markdown(result)
    atomic_write_bytes(path, (json.dumps({"result": result, "measured": measured}) + "\n").encode())
    atomic_write_bytes(args.out / "references.md", markdown.encode())
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
