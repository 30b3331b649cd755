"""``faces``: find, select and align the faces of photos."""

from __future__ import annotations

import json
from pathlib import Path

HELP = "Detect faces in photos: print boxes, 5 landmarks and selection; optionally save aligned crops."


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--save-aligned", metavar="DIR", help="save each selected face's aligned crop as PNG here")
    parser.add_argument(
        "--size", type=int, default=512, help="aligned crop size in pixels (default 512; 1024 possible)"
    )
    parser.add_argument(
        "--detector", choices=("hog", "cnn"), default="hog", help="dlib detector (cnn: slower, finds more)"
    )
    parser.add_argument("--select", choices=("all", "largest", "central"), default="all", help="which faces to keep")
    parser.add_argument("--min-size", type=float, default=0, help="skip faces smaller than this many pixels")


def run(args) -> int:
    from ..batch import run_batch
    from ..faces import align_face, detect_faces, select_faces
    from ..io import list_images, load_image, save_image

    out_dir = Path(args.save_aligned) if args.save_aligned else None

    def process(path: Path) -> dict:
        image = load_image(path)
        faces = detect_faces(image.rgb, detector=args.detector)
        selection = select_faces(faces, image.size, mode=args.select, min_size=args.min_size)
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
                crop = align_face(image.rgb, face, args.size)
                target = out_dir / f"{path.stem}_face{index:02d}.png"
                save_image(target, crop.image)
                entry["aligned"] = str(target)
            report["faces"].append(entry)
        if args.json:
            print(json.dumps(report), flush=True)
        else:
            chosen = sum(entry["selected"] for entry in report["faces"])
            found = f"{len(faces)} face(s), {chosen} selected" if faces else "no face found (a photo, not an error)"
            print(f"{path}: {found}", flush=True)
            for entry in report["faces"]:
                box = entry["box"]
                note = "selected" if entry["selected"] else f"skipped ({entry.get('skipped_because')})"
                corners = ",".join(f"{box[side]:.0f}" for side in ("left", "top", "right", "bottom"))
                print(f"  #{entry['index']} box=({corners}) size={entry['size']:.0f}px {note}")
        return report

    return run_batch(list_images(args.images), process, desc="faces", show_progress=not args.json).exit_code
