"""Many input files, one function over each: find the inputs, keep outputs off them, report every file.

Used by the command-line tools and by evaluation. The rules, each for a photographer's only copies:

- :func:`scan_inputs` expands folders recursively and reports every file it leaves out, with the reason:
  unsupported image formats, broken links and link loops, links to folders (not followed), unreadable
  folders, a folder that yields nothing (these count as failed), and files that are not images or are
  hidden (listed, but no failure).
- :func:`prepare_output_folder` refuses an output folder that is, or contains, an input, and checks that
  it is a folder that can be created and written, before any model loads; it clears stale temporary files.
- :func:`run_batch` turns any exception of one file into that file's failure, never the batch's.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from .errors import AuthFaceError, OutputFolderError
from .io import IMAGE_SUFFIXES, describe_unreadable_path, remove_stale_temp_files

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Image formats met in photo folders that the loader does not read, with what to do about each.
UNSUPPORTED_IMAGE_SUFFIXES = {
    ".gif": "GIF is not supported (a 256-colour format; convert it to PNG)",
    ".heic": "HEIC is not supported (convert it to JPEG or PNG)",
    ".heif": "HEIF is not supported (convert it to JPEG or PNG)",
    ".avif": "AVIF is not supported (convert it to JPEG or PNG)",
    ".jxl": "JPEG XL is not supported (convert it to JPEG or PNG)",
    ".psd": "Photoshop files are not supported (export a JPEG, PNG or TIFF)",
    ".dng": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".cr2": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".cr3": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".nef": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".arw": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".raf": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".orf": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
    ".rw2": "camera raw files are not supported (develop it to a JPEG, PNG or TIFF)",
}
# Refuse to start with less free space than one large output needs (an 8K PNG is up to ~100 MB).
MIN_FREE_BYTES = 100_000_000


@dataclass(frozen=True)
class InputFile:
    """An image to process: where to read it, and the name its outputs are made from (its path relative to
    the folder it was found in, or its file name when it was given directly)."""

    path: Path
    name: Path


@dataclass
class InputScan:
    """What a list of files and folders expands to: the images, the files left out that count as failed
    (``problems``) and those only listed (``ignored``), each as (path, reason)."""

    files: list[InputFile] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)


def scan_inputs(inputs: Sequence[str | os.PathLike], *, exclude: str | os.PathLike | None = None) -> InputScan:
    """Expand ``inputs`` (files and folders) into images, in order, each folder's files sorted by name.

    A file given directly is kept whatever its name (the loader then says what is wrong with it). Folders are
    searched recursively; ``exclude`` (the output folder, when it lies inside an input folder) is not entered.
    The same file given twice is kept once.
    """
    scan = InputScan()
    excluded = Path(exclude).resolve() if exclude is not None else None
    for item in map(Path, inputs):
        if item.is_dir():
            found = len(scan.files)
            _scan_folder(item, item, excluded, scan)
            if len(scan.files) == found and not any(_is_within(path, item) for path, _ in scan.problems):
                supported = ", ".join(IMAGE_SUFFIXES)
                scan.problems.append((item, f"no image files in this folder (looked for {supported})"))
        else:
            scan.files.append(InputFile(item, Path(item.name)))
    first_seen: dict[Path, Path] = {}
    unique = []
    for entry in scan.files:
        first = first_seen.setdefault(_identity(entry.path), entry.path)
        if first == entry.path:
            unique.append(entry)
        else:
            scan.ignored.append((entry.path, f"the same file as {first}, done once"))
    scan.files = unique
    return scan


def _scan_folder(folder: Path, root: Path, excluded: Path | None, scan: InputScan) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        scan.problems.append((folder, f"cannot read this folder ({error.strerror or error})"))
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            scan.ignored.append((path, "hidden"))
            continue
        if entry.is_symlink():
            problem = describe_unreadable_path(path)
            if problem:
                scan.problems.append((path, problem))
                continue
            if path.is_dir():
                scan.problems.append((path, "symbolic link to a folder: not followed (give that folder as an input)"))
                continue
        elif entry.is_dir(follow_symlinks=False):
            if excluded is not None and path.resolve() == excluded:
                scan.ignored.append((path, "the output folder"))
            else:
                _scan_folder(path, root, excluded, scan)
            continue
        if not stat.S_ISREG(os.stat(path).st_mode):
            scan.ignored.append((path, "not a regular file"))
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            scan.files.append(InputFile(path, path.relative_to(root)))
        elif suffix in UNSUPPORTED_IMAGE_SUFFIXES:
            scan.problems.append((path, UNSUPPORTED_IMAGE_SUFFIXES[suffix]))
        else:
            scan.ignored.append((path, "not an image file"))


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _identity(path: Path) -> Path:
    """The file a path names (links resolved), to tell the same input given twice."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: keep the spelling
        return Path(os.path.abspath(path))


def prepare_output_folder(folder: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> Path:
    """Check ``folder`` before any work: not an input nor above one, a folder (created if missing), writable,
    with room; then remove the temporary files killed writers left in it.

    Raises:
        OutputFolderError: the message names the folder and the problem.
    """
    folder = Path(folder)
    check_output_outside_inputs(folder, inputs)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder}: exists and is not a folder; choose a folder for the outputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputFolderError(f"{folder}: cannot write in the output folder ({error.strerror or error})") from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise OutputFolderError(
            f"{folder}: only {free / 1e6:.0f} MB free where the outputs go; at least {MIN_FREE_BYTES / 1e6:.0f} MB "
            "are needed"
        )
    for stale in remove_stale_temp_files(folder):
        logger.info("removed %s, left by an interrupted write", stale)
    return folder


def check_output_outside_inputs(folder: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """Raise :class:`OutputFolderError` when ``folder`` is an input or contains one (links followed)."""
    target = Path(folder).resolve()
    for item in map(Path, inputs):
        for spelling in {Path(os.path.abspath(item)), _identity(item)}:
            if _is_within(spelling, target):
                raise OutputFolderError(
                    f"{folder}: the output folder is, or contains, the input {item}; choose a folder outside the "
                    "inputs (originals are never written over)"
                )


def print_left_out(scan: InputScan) -> None:
    """Print every file the search left out, with the reason: those that count as failed, then those ignored."""
    for path, reason in scan.problems:
        print(f"error: {path}: {reason}", file=sys.stderr)
    for path, reason in scan.ignored:
        print(f"ignored: {path}: {reason}", file=sys.stderr)


def check_distinct_outputs(outputs: Iterable[tuple[Path, Path]]) -> None:
    """Raise :class:`OutputFolderError` when two inputs of ``(input, output)`` pairs would write the same output
    (two folders holding ``a.jpg``, or ``x/a.jpg`` and ``y/a.jpg`` given directly)."""
    owners: dict[Path, Path] = {}
    for source, output in outputs:
        earlier = owners.setdefault(output, source)
        if earlier != source:
            raise OutputFolderError(
                f"{earlier} and {source} would both be written to {output}; restore them into separate output "
                "folders, or give their common parent folder"
            )


@dataclass
class BatchReport:
    """What happened to each input, in input order: results as (path, value), failures and deliberate
    skips as (path, message)."""

    results: list[tuple[Path, object]] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The process exit status: 1 if any input failed (skips are not failures), else 0."""
        return 1 if self.failures else 0


def run_batch(
    paths: Iterable[T],
    process: Callable[[T], object],
    *,
    desc: str,
    show_progress: bool = True,
    total: int | None = None,
    position: int | None = None,
) -> BatchReport:
    """Call ``process(path)`` on each path; any exception marks that path failed (naming it) and goes on.

    ``process`` may raise :class:`SkipInput` to skip a file without failing (for example, an output that
    already exists when resuming), or :class:`StopBatch` when no later file can succeed either (the output
    disk is full): that file fails and the rest are reported as not attempted. Ctrl+C still stops the batch.
    ``paths`` may be any iterable (it is read once, in order): a stream of photos never sits in memory whole.
    ``total`` (the length of a sized ``paths`` when not given) and ``position`` are the progress bar's.
    """
    report = BatchReport()
    total = len(paths) if total is None and isinstance(paths, Sized) else total
    remaining = iter(paths)
    bar = tqdm(
        remaining, desc=desc, total=total, unit="file", disable=not show_progress, file=sys.stderr, position=position
    )
    for path in bar:
        try:
            report.results.append((path, process(path)))
        except SkipInput as skip:
            report.skipped.append((path, str(skip)))
        except Exception as error:  # noqa: BLE001 - one file's failure, whatever it is, is that file's alone
            report.failures.append((path, _failure_message(path, error)))
            tqdm.write(f"error: {report.failures[-1][1]}", file=sys.stderr)
            if isinstance(error, StopBatch):
                report.failures += [(rest, f"{rest}: not attempted ({error})") for rest in remaining]
                break
    bar.close()
    if report.failures:
        count = len(report.results) + len(report.skipped) + len(report.failures)
        print(f"{len(report.failures)} of {count} file(s) failed:", file=sys.stderr)
        for _, message in report.failures:
            print(f"  {message}", file=sys.stderr)
    return report


def _failure_message(path: Path, error: Exception) -> str:
    """'<path>: <problem>'; an error we did not raise on purpose also says what kind it is."""
    if isinstance(error, OSError) and error.strerror:  # not "[Errno 28] ..."
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    elif isinstance(error, (AuthFaceError, OSError, ValueError, StopBatch)):  # messages that name the problem
        text = str(error)
    else:
        logger.debug("unexpected error on %s", path, exc_info=error)
        text = f"unexpected {type(error).__name__}: {str(error).strip()} (run with -v for the traceback)"
    return text if str(path) in text else f"{path}: {text}"


class SkipInput(Exception):
    """Raised by a batch step to skip an input on purpose (not a failure)."""


class StopBatch(Exception):
    """Raised by a batch step when the inputs after this one cannot succeed either (no space left, say)."""


# Write errors after which no later output can be written either.
OUTPUT_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def stop_if_output_full(error: OSError) -> None:
    """Raise :class:`StopBatch` (with the system's words) for a write error that every later write would meet."""
    if error.errno in OUTPUT_FULL_ERRNOS:
        raise StopBatch(error.strerror or str(error)) from None
