"""One process's photos, restored in input order while the model stays busy.

Three stages overlap:

1. **prepare**, in worker threads: check the item can be written, load it, detect, select and align its faces
   (:func:`restore.prepare_restoration`); at most ``queue_size`` photos ahead of the model (a bounded queue).
2. **restore**, in this thread (the model's): faces in batches of ``max_batch_size``, each face with noise of its
   own (:func:`restore.face_seeds`; with best of N, each of its ``candidates`` takes a row of a batch:
   :func:`restore.model_inputs`). A batch holds faces of one photo, in the same batches as ``restore_image``;
   with cross-photo batching (``group_size`` > 1) it is filled with faces of the next photos of the same group,
   so batches are full, and never spans two groups: the groups, not the processes, decide the batches.
3. **finish**, in worker threads: paste the faces back, check identity (:func:`restore.finish_restoration`) and
   encode the outputs (the caller's ``encode``), so the model's thread never compresses an 8K image.

:func:`restore_in_order` yields one :class:`Outcome` per item, in input order. Detection and the identity check
take dlib's lock (``faces.detect.DLIB_LOCK``): they overlap the model, not each other.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import NoFaceDetectedError
from ..references import Reference
from ..restore import (
    PreparedPhoto,
    RestoreConfig,
    RestoreResult,
    finish_restoration,
    model_inputs,
    prepare_restoration,
    restore_faces,
)
from .sources import ArchiveItem


@dataclass(frozen=True)
class Batching:
    """How one process overlaps its work.

    Args:
        group_size: photos whose faces may share a batch; 1 batches each photo's faces alone.
        workers: threads of each CPU stage (prepare, finish).
        queue_size: photos prepared ahead of the model at most.
    """

    group_size: int = 1
    workers: int = 2
    queue_size: int = 8


@dataclass
class Outcome:
    """What became of one item: restored (``result`` and the ``payload`` its encoding made), no face (the
    message), or failed (the error)."""

    item: ArchiveItem
    result: RestoreResult | None = None
    payload: object = None
    no_face: str | None = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass(eq=False)
class _Photo:
    """A photo between its preparation and its outcome."""

    item: ArchiveItem
    started: float = 0.0
    prepared: PreparedPhoto | None = None
    faces: np.ndarray | None = None  # what the model restores, each face once per candidate (restore.model_inputs)
    seeds: list[int] = field(default_factory=list)  # one per row of ``faces``
    restored: list[np.ndarray | None] = field(default_factory=list)  # per row of ``faces``
    waiting: int = 0  # rows not back from the model yet
    error: BaseException | None = None
    finished: Future | None = None
    outcome: Outcome | None = None

    def ready(self) -> bool:
        return self.outcome is not None or (self.finished is not None and self.finished.done())

    def take(self) -> Outcome:
        """The outcome, waiting for the finish stage if needed."""
        if self.outcome is None:
            try:
                self.outcome = self.finished.result()
            except Exception as error:  # noqa: BLE001 - a failure to paste or encode is this photo's
                self.outcome = Outcome(self.item, error=error)
        return self.outcome


def restore_in_order(
    items: Iterable[ArchiveItem],
    pipe,
    config: RestoreConfig,
    batching: Batching,
    *,
    encode: Callable[[ArchiveItem, RestoreResult, float], object],
    check: Callable[[ArchiveItem], None] = lambda item: None,
    references: Sequence[Reference] = (),
) -> Iterator[Outcome]:
    """Restore ``items`` (module doc); ``config.seed`` must be set. ``check(item)`` raises when the item's
    outputs cannot be written (before any work on it); ``encode(item, result, seconds)`` runs in a finish
    thread and its return value is the outcome's payload. ``references`` give each face a verdict against
    photos of the person (``authface_core.references``) and rank the candidates.

    Closing the generator early cancels the photos not started.
    """
    if config.seed is None:
        raise ValueError("restore_in_order needs a seed: draw one for the whole run (restore.draw_seed)")
    smoke_test_model = pipe.is_smoke_test_model

    def prepare(item: ArchiveItem) -> tuple[PreparedPhoto, float]:
        started = time.perf_counter()
        check(item)
        return prepare_restoration(item.load(), config), started

    def finish(photo: _Photo) -> Outcome:
        result = finish_restoration(
            photo.prepared,
            np.stack(photo.restored),
            smoke_test_model=smoke_test_model,
            references=references,
            seeds=photo.seeds,
        )
        seconds = time.perf_counter() - photo.started
        return Outcome(photo.item, result, encode(photo.item, result, seconds), seconds=seconds)

    preparing = ThreadPoolExecutor(batching.workers, thread_name_prefix="archive-prepare")
    finishing = ThreadPoolExecutor(batching.workers, thread_name_prefix="archive-finish")
    ahead: deque[tuple[ArchiveItem, Future]] = deque()
    in_flight: deque[_Photo] = deque()  # input order, until yielded
    batch: list[tuple[_Photo, int]] = []
    source = iter(items)

    def refill() -> None:
        while len(ahead) < batching.queue_size and (item := next(source, None)) is not None:
            ahead.append((item, preparing.submit(prepare, item)))

    def complete(photo: _Photo) -> None:
        if photo.error is not None:
            photo.outcome = Outcome(photo.item, error=photo.error)
        else:
            photo.finished = finishing.submit(finish, photo)

    def run_model() -> None:
        faces = np.stack([photo.faces[row] for photo, row in batch])
        seeds = [photo.seeds[row] for photo, row in batch]
        try:
            restored = restore_faces(pipe, faces, config, seeds=seeds)
        except Exception as error:  # noqa: BLE001 - the batch's failure is that of its photos
            restored = [None] * len(batch)
            for photo, _ in batch:
                photo.error = photo.error or error
        for (photo, row), face in zip(batch, restored, strict=True):
            photo.restored[row] = face
            photo.waiting -= 1
            if photo.waiting == 0:
                complete(photo)
        batch.clear()

    def ready(*, wait: bool) -> Iterator[Outcome]:
        while in_flight and (wait or in_flight[0].ready()):
            yield in_flight.popleft().take()

    try:
        refill()
        photos_in_group = 0
        while ahead:
            item, prepared = ahead.popleft()
            refill()
            photo = _Photo(item)
            in_flight.append(photo)
            try:
                photo.prepared, photo.started = prepared.result()
            except NoFaceDetectedError as error:
                photo.outcome = Outcome(item, no_face=str(error))
            except Exception as error:  # noqa: BLE001 - one photo's failure is its own
                photo.outcome = Outcome(item, error=error)
            else:
                photo.faces, photo.seeds = model_inputs(photo.prepared, item.key)
                count = len(photo.faces)
                photo.restored, photo.waiting = [None] * count, count
                for row in range(count):
                    batch.append((photo, row))
                    if len(batch) == config.max_batch_size:
                        run_model()
            photos_in_group += 1
            if photos_in_group == batching.group_size:
                if batch:
                    run_model()
                photos_in_group = 0
            yield from ready(wait=False)
            # Bound what waits to be written: wait for the oldest photo once too many are done or finishing.
            while len(in_flight) > batching.queue_size + config.max_batch_size and in_flight[0].finished is not None:
                yield in_flight.popleft().take()
        if batch:
            run_model()
        yield from ready(wait=True)
    finally:
        preparing.shutdown(wait=True, cancel_futures=True)
        finishing.shutdown(wait=True, cancel_futures=True)
