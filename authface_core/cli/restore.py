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

Every run is an archive run (``authface_core.archive``): under ``accelerate launch`` the photos left are split
between the processes, and each face's noise comes from the seed, the photo's relative name (or dataset id)
and the face's index, so any number of processes gives the same pixels. The archive flags add datasets,
Parquet shards, a Hub repo, cross-photo batching and a dry run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..archive.config import ArchiveConfig
from ..model_config import ModelConfig, add_model_arguments
from ..restore import PRESETS, RestoreConfig
from ..settings import add_settings_arguments
from .verify import add_reference_argument, load_reference_arguments

HELP = "Restore faces in photos or aligned crops with AuthFace (folders, datasets, resume, several processes)."
SMOKE_TEST_WARNING = "smoke-test model with random weights: this output is not a restoration"


def add_arguments(parser) -> None:
    """The settings' flags (from their dataclasses), then the others."""
    add_model_arguments(parser)
    add_settings_arguments(parser, RestoreConfig)
    add_settings_arguments(parser, ArchiveConfig)
    parser.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="image files or folders (searched recursively); or --dataset"
    )
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
    add_reference_argument(parser, required=False)


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


def sidecar_record(
    input_path: Path, output_path: Path, model: str, result, seconds: float, references: Sequence[str] = ()
) -> dict:
    """The JSON record of one restoration: settings and references (``--reference`` as given) used, and what
    happened to each face."""
    import dataclasses

    from ..settings import settings_to_dict

    faces = [
        {
            "index": face.index,
            "box": face.box.to_dict() if face.box is not None else None,
            "authenticity": dataclasses.asdict(face.authenticity) if face.authenticity is not None else None,
            **({"reference": face.reference_check.to_dict()} if face.reference_check is not None else {}),
            **({"candidates": [score.to_dict() for score in face.candidates]} if face.candidates else {}),
        }
        for face in result.faces
    ]
    record = {
        "input": str(input_path),
        "output": str(output_path),
        "model": model,
        "smoke_test_model": result.smoke_test_model,
        "settings": settings_to_dict(result.config),
        "references": list(references),
        "output_size": [result.image.shape[1], result.image.shape[0]],
        "faces": faces,
        "skipped_faces": [{"box": box.to_dict(), "reason": reason} for box, reason in result.skipped],
        "seconds": round(seconds, 3),
    }
    if result.smoke_test_model:
        record["warning"] = SMOKE_TEST_WARNING
    return record


def recorded_differences(record: dict, model: str, config: RestoreConfig, references: Sequence[str] = ()) -> list[str]:
    """How the settings and references a sidecar recorded differ from the ones asked for now ('steps 20, now
    50'); a seed left to chance (None) matches any recorded seed."""
    from ..settings import settings_to_dict

    recorded = record.get("settings", {})
    changes = [] if record.get("model") == model else [f"model {record.get('model')}, now {model}"]
    for name, wanted in settings_to_dict(config).items():
        if recorded.get(name) != wanted and not (name == "seed" and wanted is None):
            changes.append(f"{name} {recorded.get(name)!r}, now {wanted!r}")
    if record.get("references", []) != list(references):
        changes.append(f"references {record.get('references', [])!r}, now {list(references)!r}")
    return changes


@dataclass
class FolderOutputs:
    """Each photo's restoration under its relative name and format in ``output_dir``, with its sidecar (module
    doc); an output kept from an earlier run is left alone (``overwrite`` redoes it)."""

    output_dir: Path
    model: str
    config: RestoreConfig
    overwrite: bool = False
    references: tuple[str, ...] = ()

    def target(self, item) -> Path:
        if item.name is None:
            raise ValueError(f"{item.source}: its id cannot name an output file; use --output-format parquet")
        return output_path(item.name, self.output_dir)

    def check(self, item) -> None:
        self.target(item)

    def kept(self, item) -> bool:
        """Whether an earlier run's output and sidecar are there; says so when made with other settings."""
        if self.overwrite or item.name is None:
            return False
        output = self.target(item)
        if not (output.is_file() and sidecar_path(output).is_file()):
            return False
        changes = _earlier_changes(sidecar_path(output), self.model, self.config, self.references)
        if changes:
            print(f"note: {output} kept, made with other settings ({'; '.join(changes)}); --overwrite redoes it",
                  file=sys.stderr)  # fmt: skip
        return changes is not None

    def encode(self, item, result, seconds: float) -> tuple[bytes, bytes]:
        """The image file's bytes, in the output's format, and the sidecar's."""
        from ..io import OUTPUT_FORMATS, encode_image

        output = self.target(item)
        image = encode_image(result.image, result.alpha, format=OUTPUT_FORMATS[output.suffix.lower()])
        record = sidecar_record(Path(item.source), output, self.model, result, seconds, self.references)
        return image, json.dumps(record, indent=2).encode()

    def commit(self, item, payload: tuple[bytes, bytes]) -> None:
        """Write the image, then its sidecar (each atomically): a sidecar means its image is whole."""
        from .. import io
        from ..batch import stop_if_output_full

        output = self.target(item)
        try:
            io.atomic_write_bytes(output, payload[0])
            io.atomic_write_bytes(sidecar_path(output), payload[1])
        except OSError as error:
            stop_if_output_full(error)
            raise

    def commit_no_face(self, item, message: str) -> None:
        """Nothing is written for a photo without a face (a rerun looks again)."""

    def close(self) -> None:
        pass

    def finish_run(self) -> None:
        pass


def run(args) -> int:
    """Restore every input; the exit status is that of ``authface_core.cli``."""
    import dataclasses

    from ..archive.engine import Batching
    from ..archive.processes import Processes
    from ..archive.run import run_archive
    from ..batch import check_output_outside_inputs, prepare_output_folder, print_left_out
    from ..errors import AuthFaceError
    from ..restore import draw_seed
    from ..settings import settings_from_namespace
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        model_config, config, archive = settings_from_namespace(args, ModelConfig, RestoreConfig, ArchiveConfig)
        if bool(args.inputs) == bool(archive.dataset):
            raise ValueError("give INPUT files or folders, or --dataset, but not both")
        if archive.dry_run and archive.streaming:
            raise ValueError("--dry-run counts the photos left: it needs the whole list, not --streaming")
        processes = Processes.start(model_config.device)
        model_config = dataclasses.replace(model_config, device=processes.device_for(model_config.device))
        model = model_config.resolved_model
        if archive.dry_run:  # nothing is written: the folder is only checked
            check_output_outside_inputs(args.output_dir, args.inputs)
            output_dir = Path(args.output_dir)
        else:
            output_dir = processes.main_first(prepare_output_folder, args.output_dir, args.inputs)
        items, stream, scan = _archive_items(args, archive, output_dir, processes)
        outputs = _archive_outputs(archive, output_dir, model, config, args.overwrite, tuple(args.reference))
        references = load_reference_arguments(args.reference)
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if scan is not None and processes.is_main:
        print_left_out(scan)
    if items is not None and not items:
        return EXIT_SOME_FAILED
    if archive.dry_run:
        return _dry_run(items, outputs, model_config, config, archive, processes)
    try:
        pipe = model_config.load()
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    if pipe.is_smoke_test_model and processes.is_main:
        print(f"warning: {model}: {SMOKE_TEST_WARNING}", file=sys.stderr)
    if config.seed is None:  # one seed for the run, the main process's, recorded in every sidecar
        config = dataclasses.replace(config, seed=processes.broadcast(draw_seed()))
    batching = Batching(archive.group_size if archive.cross_photo_batch else 1, archive.workers, archive.queue_size)
    report = run_archive(items, stream, outputs, pipe, config, batching, processes, note=_note, references=references)
    if not processes.is_main:
        return EXIT_OK
    failed = len(report.failures) + (len(scan.problems) if scan is not None else 0)
    ignored = len(scan.ignored) if scan is not None else 0
    if report.failures and processes.count > 1:
        print(f"{len(report.failures)} file(s) failed in all:", *report.failures, sep="\n  ", file=sys.stderr)
    print(
        f"{report.restored} restored, {report.kept} already done, {report.no_face} without a face, "
        f"{failed} failed, {ignored} ignored -> {output_dir}",
        file=sys.stderr,
    )
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _archive_items(args, archive: ArchiveConfig, output_dir: Path, processes):
    """(items or None, stream or None, the folder scan or None) of the run's inputs."""
    from ..archive.sources import DatasetSource, folder_items
    from ..batch import check_distinct_outputs, scan_inputs

    if archive.dataset is None:
        scan = scan_inputs(args.inputs, exclude=output_dir)
        check_distinct_outputs((entry.path, output_path(entry.name, output_dir)) for entry in scan.files)
        return folder_items(scan.files), None, scan
    source = processes.main_first(
        lambda: DatasetSource.open(
            archive.dataset,
            split=archive.split,
            image_column=archive.image_column,
            id_column=archive.id_column,
            streaming=archive.streaming,
        )
    )
    return (None, source.stream, None) if archive.streaming else (source.items(), None, None)


def _archive_outputs(
    archive: ArchiveConfig,
    output_dir: Path,
    model: str,
    config: RestoreConfig,
    overwrite: bool,
    references: tuple[str, ...],
):
    """The run's outputs: a folder of images and sidecars, or Parquet shards (appended to a Hub repo)."""
    if archive.output_format == "folder":
        return FolderOutputs(output_dir, model, config, overwrite, references)
    from ..archive.shards import ParquetShards
    from ..hub import DatasetRepo

    repo = None
    if archive.push_to_hub is not None:
        repo = DatasetRepo(archive.push_to_hub)
        repo.create(private=archive.hub_private)

    def record(item, result, seconds: float) -> dict:
        return sidecar_record(Path(item.source), Path(item.key), model, result, seconds, references)

    return ParquetShards(output_dir, archive.shard_rows, record, repo)


def _dry_run(
    items, outputs, model_config: ModelConfig, config: RestoreConfig, archive: ArchiveConfig, processes
) -> int:
    """Print the plan (``archive.plan``) on the main process; nothing is restored or written."""
    from ..archive.plan import ArchivePlan, checkpoint_denoiser_configs, count_faces, flops_per_face

    counts = count_faces(items, outputs, config, processes, archive.dry_run_sample)
    if processes.is_main:
        unet, controlnet, counted_on = checkpoint_denoiser_configs(model_config.resolved_model, model_config.revision)
        plan = ArchivePlan(len(items), *counts, flops_per_face(unet, controlnet, config), counted_on, processes.count)
        print(plan.describe())
    return 0


def _note(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _earlier_changes(sidecar: Path, model: str, config: RestoreConfig, references: tuple[str, ...]) -> list[str] | None:
    """The differences from an earlier output's recorded settings, or None when its sidecar is unreadable
    (then the input is restored again)."""
    try:
        return recorded_differences(json.loads(sidecar.read_text()), model, config, references)
    except (OSError, ValueError, AttributeError):
        return None
