"""``faces``: find, select and align the faces of photos.

A photo without a face is a result, not an error (as in ``restore``): it is reported and the exit
status stays 0. With ``--save-aligned DIR``, the crops of ``a.jpg`` are ``DIR/a.jpg.face00.png``, ...
(inputs found in a folder keep their path below it), and DIR is checked as ``restore`` checks its
output folder: never an input, nor above one, and writable before the first photo.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from ..faces.detect import DETECTORS
from ..faces.select import SELECTION_MODES
from ..restore import MAX_FACE_SIZE_PX, MIN_FACE_SIZE_PX
from ..settings import Range, add_settings_arguments, check_settings, setting

HELP = "Detect faces in photos: print boxes, 5 landmarks and selection; optionally save aligned crops."


@dataclass(frozen=True)
class FacesSettings:
    """How faces are found, chosen and cropped."""

    _argument_group_name = "detection settings"

    detector: Literal[DETECTORS] = setting("hog", "dlib detector: hog, or cnn (slower; finds profile and small faces)")
    face_selection: Literal[SELECTION_MODES] = setting(
        "all", "which faces to keep: all, the largest or the most central", aliases="--select"
    )
    min_face_size: Annotated[int, Range(0, 100_000)] = setting(
        0, "skip faces whose box is smaller than this many pixels", aliases="--min-size"
    )
    face_size: Annotated[int, Range(MIN_FACE_SIZE_PX, MAX_FACE_SIZE_PX, step=8)] = setting(
        512, "side of the saved aligned crops in pixels (1024 possible)", aliases="--size"
    )

    def __post_init__(self):
        check_settings(self)


def add_arguments(parser) -> None:
    """The settings' flags (from their dataclasses), then the others."""
    add_settings_arguments(parser, FacesSettings)
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--save-aligned", metavar="DIR", help="save each selected face's aligned crop as PNG here")


def crop_path(out_dir: Path, name: Path, index: int) -> Path:
    """``DIR/<name>.face<index>.png``: the input's name with its extension, so a.jpg and a.png never collide."""
    return out_dir / name.parent / f"{name.name}.face{index:02d}.png"


def run(args) -> int:
    from ..batch import check_distinct_outputs, prepare_output_folder, print_left_out, run_batch, scan_inputs
    from ..errors import AuthFaceError
    from ..faces import align_face, detect_faces, select_faces
    from ..io import load_image, save_image
    from ..settings import settings_from_namespace
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        (settings,) = settings_from_namespace(args, FacesSettings)
        out_dir = prepare_output_folder(args.save_aligned, args.images) if args.save_aligned else None
        scan = scan_inputs(args.images, exclude=out_dir)
        names = {entry.path: entry.name for entry in scan.files}
        if out_dir is not None:
            check_distinct_outputs((path, out_dir / name) for path, name in names.items())
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print_left_out(scan)

    def process(path: Path) -> dict:
        image = load_image(path)
        faces = detect_faces(image.rgb, detector=settings.detector)
        selection = select_faces(faces, image.size, mode=settings.face_selection, min_size=settings.min_face_size)
        report = {"file": str(path), "width": image.size[0], "height": image.size[1], "faces": []}
        for index, face in enumerate(faces):
            selected = any(face is chosen for chosen in selection.selected)
            reason = next((why for skipped, why in selection.skipped if skipped is face), None)
            entry = {
                "index": index,
                "box": face.box.to_dict(),
                "size": round(max(face.box.width, face.box.height), 1),
                "landmarks5": face.landmarks.to_five().to_list(),
                "selected": selected,
            }
            if reason:
                entry["skipped_because"] = reason
            if selected and out_dir is not None:
                target = crop_path(out_dir, names[path], index)
                save_image(target, align_face(image.rgb, face, settings.face_size).image)
                entry["aligned"] = str(target)
            report["faces"].append(entry)
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            print_faces(report, len(selection.selected))
        return report

    batch = run_batch(list(names), process, desc="faces", show_progress=not args.json)
    return EXIT_SOME_FAILED if batch.failures or scan.problems else EXIT_OK


def print_faces(report: dict, chosen: int) -> None:
    """One line per photo, one per face."""
    faces = report["faces"]
    found = f"{len(faces)} face(s), {chosen} selected" if faces else "no face found (a result, not an error)"
    print(f"{report['file']}: {found}", flush=True)
    for entry in faces:
        box = entry["box"]
        note = "selected" if entry["selected"] else f"skipped ({entry.get('skipped_because')})"
        corners = ",".join(f"{box[side]:.0f}" for side in ("left", "top", "right", "bottom"))
        print(f"  #{entry['index']} box=({corners}) size={entry['size']:.0f}px {note}")
