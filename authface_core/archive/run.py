"""An archive run: find what is left, split it between processes, restore it in order, write it, sum it up.

1. What is left: the main process asks the outputs which photos are done (``kept``: a folder's image and
   sidecar, or a shard's row) and broadcasts the rest, so every process works from the same list; a streamed
   dataset is split by ``datasets`` instead, and each process skips what is done in its own part.
2. The split: accelerate's ``split_between_processes`` over groups of ``group_size`` photos (whole groups, so
   that cross-photo batches do not depend on the number of processes).
3. No process writes before all have read what is done (a barrier); then each restores its part
   (``engine.restore_in_order``) and writes each photo in input order (``batch.run_batch``: a failure is that
   photo's, a full disk stops the process and names what was not attempted).
4. Progress: a bar per process, and on the main process one for the whole run, fed by the process group's
   store. At the end the main process finishes the outputs (the Hub's catch-up and card) and sums up.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..references import Reference
from ..restore import RestoreConfig, RestoreResult
from .engine import Batching, Outcome, restore_in_order
from .processes import Processes
from .sources import ArchiveItem

# Seconds between refreshes of the main process's bar of the whole run.
TOTAL_BAR_REFRESH_S = 1.0


class ArchiveOutputs(Protocol):
    """Where a run's results go: a folder (``cli.restore.FolderOutputs``) or Parquet shards
    (``archive.shards.ParquetShards``)."""

    def kept(self, item: ArchiveItem) -> bool: ...  # done by an earlier run
    def check(self, item: ArchiveItem) -> None: ...  # raises when the item's outputs cannot be written
    def encode(self, item: ArchiveItem, result: RestoreResult, seconds: float) -> object: ...  # worker thread
    def commit(self, item: ArchiveItem, payload: object) -> None: ...  # atomic; in input order
    def commit_no_face(self, item: ArchiveItem, message: str) -> None: ...
    def close(self) -> None: ...
    def finish_run(self) -> None: ...  # main process, after every process closed


@dataclass
class RunReport:
    """Counts of one process, or of the whole run once summed; failures as messages that name the photo."""

    restored: int = 0
    kept: int = 0
    no_face: int = 0
    failures: list[str] = field(default_factory=list)

    @classmethod
    def total(cls, reports: Iterable[RunReport]) -> RunReport:
        reports = list(reports)
        return cls(
            sum(report.restored for report in reports),
            sum(report.kept for report in reports),
            sum(report.no_face for report in reports),
            [message for report in reports for message in report.failures],
        )


def left_to_do(items: Sequence[ArchiveItem], outputs: ArchiveOutputs, processes: Processes) -> list[int]:
    """The indices of the items not done yet, as the main process finds them (``outputs.kept``), on every process."""
    left = [index for index, item in enumerate(items) if not outputs.kept(item)] if processes.is_main else None
    return processes.broadcast(left)


def share_left(
    items: Sequence[ArchiveItem], outputs: ArchiveOutputs, processes: Processes, group_size: int
) -> tuple[list[ArchiveItem], int, int]:
    """(this process's items among those not done, how many were done, how many are left in all): the items left
    are split between the processes in whole groups of ``group_size``."""
    left = left_to_do(items, outputs, processes)
    groups = [left[start : start + group_size] for start in range(0, len(left), group_size)]
    return [items[index] for group in processes.share(groups) for index in group], len(items) - len(left), len(left)


def run_archive(
    items: Sequence[ArchiveItem] | None,
    stream: Callable[[int, int], Iterable[ArchiveItem]] | None,
    outputs: ArchiveOutputs,
    pipe,
    config: RestoreConfig,
    batching: Batching,
    processes: Processes,
    *,
    note: Callable[[str], None],
    references: Sequence[Reference] = (),
) -> RunReport:
    """Restore the photos (``items``, or a ``stream(process index, count)``) into ``outputs`` on every process;
    returns the whole run's report on the main process, this process's own on the others. ``note(message)``
    shows a message without breaking the progress bars; ``references`` are photos of the people
    (``authface_core.references``)."""
    report = RunReport()
    if items is not None:
        mine, kept, left = share_left(items, outputs, processes, batching.group_size)
        report.kept = kept if processes.is_main else 0  # every process knows it; the main one counts it
    else:
        mine, left = _skip_kept(stream(processes.index, processes.count), outputs, report), None
    processes.barrier()  # every process has read what is done: writing may start
    several = processes.count > 1
    total_bar = _TotalBar(processes, left) if several and processes.is_main else None
    count = len(mine) if items is not None else None
    mine, for_engine = itertools.tee(mine)  # one pass each, in step: a stream is never held whole
    outcomes = restore_in_order(
        for_engine, pipe, config, batching, encode=outputs.encode, check=outputs.check, references=references
    )

    def write(item: ArchiveItem) -> str:
        outcome = next(outcomes)
        try:
            return _write_outcome(item, outcome, outputs, note)
        finally:
            processes.count_done(1)

    try:
        batch = run_batch_of(mine, write, processes, count)
    finally:
        outcomes.close()
    report.failures = [message for _, message in batch.failures]
    try:
        outputs.close()
    except OSError as error:
        report.failures.append(f"the last results of process {processes.index} could not be written: {error}")
    outcome_names = [name for _, name in batch.results]
    report.restored, report.no_face = outcome_names.count("restored"), outcome_names.count("no face")
    processes.barrier()
    if total_bar is not None:
        total_bar.stop()
    if processes.is_main:
        outputs.finish_run()
    reports = processes.gather(report)
    return RunReport.total(reports) if processes.is_main else report


def run_batch_of(mine, process, processes: Processes, total: int | None, *, desc: str = "restore"):
    """``batch.run_batch`` with this process's bar (``<desc>, process <i>`` under a launcher)."""
    from ..batch import run_batch

    several = processes.count > 1
    desc = f"{desc}, process {processes.index}" if several else desc
    return run_batch(mine, process, desc=desc, total=total, position=processes.local_index + 1 if several else None)


def _write_outcome(item: ArchiveItem, outcome: Outcome, outputs: ArchiveOutputs, note: Callable[[str], None]) -> str:
    """Commit one outcome (in input order); raise its error so that ``run_batch`` reports it."""
    if outcome.item is not item:  # the engine yields in input order: anything else is a bug, not a photo's failure
        raise RuntimeError(f"archive engine out of order: {outcome.item.key} came for {item.key}")
    if outcome.error is not None:
        raise outcome.error
    if outcome.no_face is not None:
        note(f"note: {outcome.no_face} Use --aligned for such crops. Left out (not an error).")
        outputs.commit_no_face(item, outcome.no_face)
        return "no face"
    outputs.commit(item, outcome.payload)
    return "restored"


def _skip_kept(stream: Iterable[ArchiveItem], outputs: ArchiveOutputs, report: RunReport) -> Iterator[ArchiveItem]:
    for item in stream:
        if outputs.kept(item):
            report.kept += 1
        else:
            yield item


class _TotalBar:
    """The main process's bar of the whole run, refreshed from the process group's count of photos done."""

    def __init__(self, processes: Processes, total: int | None):
        from tqdm.auto import tqdm

        self.processes = processes
        self.bar = tqdm(total=total, desc="all processes", unit="file", file=sys.stderr, position=0)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._refresh, name="archive-progress", daemon=True)
        self.thread.start()

    def _refresh(self) -> None:
        while not self.stopped.wait(TOTAL_BAR_REFRESH_S):
            self._update()

    def _update(self) -> None:
        done = self.processes.count_done(0)
        self.bar.update(done - self.bar.n)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._update()
        self.bar.close()
