"""``verify``: is each face of a photo (restored by AuthFace or any other tool) the person of the references?

Each photo's faces are numbered left to right and matched to the named persons of ``--reference``
(``authface_core.references``: Hungarian assignment, then same person / different person / cannot verify with
the distance to each reference and the threshold). A reference that cannot be read stops the run before any
photo (exit 2); a reference without a face is reported, and the faces that could only be its person's get
"cannot verify". A photo without a face is a result, as in ``faces``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "Check that the faces of restored photos are the people of reference photos (same / different / cannot verify)."


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", help="photos to check, files or folders (searched recursively)")
    add_reference_argument(parser, required=True)
    parser.add_argument("--json", action="store_true", help="print one JSON object per photo")


def add_reference_argument(parser, *, required: bool) -> None:
    """``--reference [NAME=]PATH[#FACE]``, repeatable (``verify`` and ``restore``)."""
    parser.add_argument(
        "--reference",
        action="append",
        required=required,
        default=[],
        metavar="[NAME=]PATH[#FACE]",
        help="a photo of a person (repeat: up to 8 per person); NAME groups several people's references, "
        "#FACE picks a face left to right (default: the largest)",
    )


def load_reference_arguments(texts: list[str]):
    """The references of ``--reference``, each one without a face reported on stderr.

    Raises:
        InvalidImageError, ValueError: a reference that cannot be read, or too many for one person.
    """
    from ..references import load_references, parse_reference

    references = load_references([parse_reference(text) for text in texts])
    for ref in references:
        if not ref.found:
            print(f"warning: reference {ref.source} ({ref.person}): {ref.problem}", file=sys.stderr)
    return references


def run(args) -> int:
    from ..batch import print_left_out, run_batch, scan_inputs
    from ..errors import AuthFaceError
    from ..io import load_image
    from ..references import verify_photo
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        references = load_reference_arguments(args.reference)
        scan = scan_inputs(args.images)
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print_left_out(scan)

    def process(path: Path) -> dict:
        checks = verify_photo(load_image(path), references)
        report = {
            "file": str(path),
            "faces": [
                {"index": index, "box": box.to_dict(), **check.to_dict()} for index, (box, check) in enumerate(checks)
            ],
        }
        print(json.dumps(report) if args.json else describe_photo(report), flush=True)
        return report

    batch = run_batch([entry.path for entry in scan.files], process, desc="verify", show_progress=not args.json)
    return EXIT_SOME_FAILED if batch.failures or scan.problems else EXIT_OK


def describe_photo(report: dict) -> str:
    """One line per photo, one per face: '  #0 same person as anna: distance 0.41 <= 0.60'."""
    lines = [f"{report['file']}: " + (f"{len(report['faces'])} face(s)" if report["faces"] else "no face found")]
    lines += [f"  #{face['index']} {face['message']}" for face in report["faces"]]
    return "\n".join(lines)
