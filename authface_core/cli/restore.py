"""``restore``: restore the faces of photos (or aligned face crops) into an output folder.

Each input keeps its name and format in the output folder: ``photos/trip/a.jpg`` given as the folder
``photos`` gives ``OUT/trip/a.jpg``, and ``a.jpg``, ``a.png`` and ``a.tiff`` stay three files (a format
the writer lacks becomes ``<name>.png``). Beside each output, ``<output name>.json`` records the model,
the settings (with the seed used) and what happened to each face. The output folder may not be, or
contain, an input; inside an input folder it is left out of the search. It is checked before the model
loads. An output that exists with its sidecar is kept, so an interrupted run resumes; where its recorded
settings differ from the ones asked for, the run says which (``--overwrite`` redoes it).

Every input is restored or reported. A photo without a face is reported and left out, not an error
(as in ``faces``); a file that fails is reported and the run goes on. Exit status: see ``authface_core.cli``.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from pathlib import Path

from ..model_config import ModelConfig, add_model_arguments
from ..restore import PRESETS, RestoreConfig
from ..settings import add_settings_arguments

HELP = "Restore faces in photos or aligned crops with AuthFace (folders, resume, JSON sidecars)."
SMOKE_TEST_WARNING = "smoke-test model with random weights: this output is not a restoration"
# Write errors after which no later output can be written either.
_OUTPUT_FOLDER_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def add_arguments(parser) -> None:
    """The settings' flags (from their dataclasses), then the others."""
    add_model_arguments(parser)
    add_settings_arguments(parser, RestoreConfig)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument(
        "-o", "--output-dir", required=True, help="folder for the restored images and their .json sidecars"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="released",
        help="start from these settings; flags and --config given win (fast: DPM-Solver++ at 20 steps)",
    )
    parser.add_argument(
        "--fast", dest="preset", action="store_const", const="fast", default=argparse.SUPPRESS, help="--preset fast"
    )
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings (their flag names, as keys)")
    parser.add_argument("--overwrite", action="store_true", help="restore again even where an output exists")


def settings_defaults(args, parser) -> None:
    """Make the preset, then the settings file, the defaults of the final parse."""
    from ..settings import apply_settings_file, settings_to_dict

    parser.set_defaults(**settings_to_dict(PRESETS[args.preset]))
    if args.config:
        apply_settings_file(parser, args.config)


def output_path(name: Path, output_dir: Path) -> Path:
    """Where the restoration of the input named ``name`` goes: the same relative name and format."""
    from ..io import OUTPUT_FORMATS

    return output_dir / (name if name.suffix.lower() in OUTPUT_FORMATS else name.with_name(f"{name.name}.png"))


def sidecar_path(output: Path) -> Path:
    """``OUT/a.jpg`` -> ``OUT/a.jpg.json``: distinct for ``a.jpg`` and ``a.png``."""
    return output.with_name(f"{output.name}.json")


def sidecar_record(input_path: Path, output_path: Path, model: str, result, seconds: float) -> dict:
    """The JSON record of one restoration: settings used and what happened to each face."""
    import dataclasses

    from ..settings import settings_to_dict

    faces = [
        {
            "index": face.index,
            "box": face.box.to_dict() if face.box is not None else None,
            "authenticity": dataclasses.asdict(face.authenticity) if face.authenticity is not None else None,
        }
        for face in result.faces
    ]
    record = {
        "input": str(input_path),
        "output": str(output_path),
        "model": model,
        "smoke_test_model": result.smoke_test_model,
        "settings": settings_to_dict(result.config),
        "output_size": [result.image.shape[1], result.image.shape[0]],
        "faces": faces,
        "skipped_faces": [{"box": box.to_dict(), "reason": reason} for box, reason in result.skipped],
        "seconds": round(seconds, 3),
    }
    if result.smoke_test_model:
        record["warning"] = SMOKE_TEST_WARNING
    return record


def recorded_differences(record: dict, model: str, config: RestoreConfig) -> list[str]:
    """How the settings a sidecar recorded differ from the ones asked for now ('steps 20, now 50'); a seed
    left to chance (None) matches any recorded seed."""
    from ..settings import settings_to_dict

    recorded = record.get("settings", {})
    changes = [] if record.get("model") == model else [f"model {record.get('model')}, now {model}"]
    for name, wanted in settings_to_dict(config).items():
        if recorded.get(name) != wanted and not (name == "seed" and wanted is None):
            changes.append(f"{name} {recorded.get(name)!r}, now {wanted!r}")
    return changes


def run(args) -> int:
    """Restore every input; the exit status is that of ``authface_core.cli``."""
    from ..batch import (
        SkipInput,
        StopBatch,
        check_distinct_outputs,
        prepare_output_folder,
        print_left_out,
        run_batch,
        scan_inputs,
    )
    from ..errors import AuthFaceError, NoFaceDetectedError
    from ..io import atomic_write_bytes, load_image, save_image
    from ..restore import restore_image
    from ..settings import settings_from_namespace
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        model_config, config = settings_from_namespace(args, ModelConfig, RestoreConfig)
        output_dir = prepare_output_folder(args.output_dir, args.inputs)
        scan = scan_inputs(args.inputs, exclude=output_dir)
        targets = {entry.path: output_path(entry.name, output_dir) for entry in scan.files}
        check_distinct_outputs(targets.items())
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print_left_out(scan)
    if not targets:
        return EXIT_SOME_FAILED
    model = model_config.resolved_model
    try:
        pipe = model_config.load()
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if pipe.is_smoke_test_model:
        print(f"warning: {model}: {SMOKE_TEST_WARNING}", file=sys.stderr)

    def process(path: Path) -> str:
        output, sidecar = targets[path], sidecar_path(targets[path])
        if not args.overwrite and output.is_file() and sidecar.is_file():
            changes = _earlier_changes(sidecar, model, config)
            if changes is not None:
                if changes:
                    print(
                        f"note: {output} kept, made with other settings ({'; '.join(changes)}); --overwrite redoes it",
                        file=sys.stderr,
                    )
                raise SkipInput(f"{output} exists")
        start = time.perf_counter()
        try:
            result = restore_image(load_image(path), pipe, config)
        except NoFaceDetectedError as error:
            print(f"note: {error} Use --aligned for such crops. Left out (not an error).", file=sys.stderr)
            return "no face"
        try:
            save_image(output, result.image, result.alpha)
            record = sidecar_record(path, output, model, result, time.perf_counter() - start)
            atomic_write_bytes(sidecar, json.dumps(record, indent=2).encode())
        except OSError as error:
            if error.errno in _OUTPUT_FOLDER_FULL:
                raise StopBatch(error.strerror or str(error)) from None
            raise
        return "restored"

    report = run_batch(list(targets), process, desc="restore")
    outcomes = [outcome for _, outcome in report.results]
    failed = len(report.failures) + len(scan.problems)
    print(
        f"{outcomes.count('restored')} restored, {len(report.skipped)} already done, "
        f"{outcomes.count('no face')} without a face, {failed} failed, {len(scan.ignored)} ignored -> {output_dir}",
        file=sys.stderr,
    )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _earlier_changes(sidecar: Path, model: str, config: RestoreConfig) -> list[str] | None:
    """The differences from an earlier output's recorded settings, or None when its sidecar is unreadable
    (then the input is restored again)."""
    try:
        return recorded_differences(json.loads(sidecar.read_text()), model, config)
    except (OSError, ValueError, AttributeError):
        return None
