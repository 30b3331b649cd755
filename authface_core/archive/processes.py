"""Which process of a run this is, and the few collective steps an archive run needs, on accelerate.

``accelerate launch`` (any number of processes, GPUs and machines it supports) starts the processes; a plain
``python -m authface_core restore`` is the one process of its run. Nothing here schedules work: inputs are
split with accelerate's ``split_between_processes``, decisions are made on the main process and broadcast, so
every process takes the same path, and a process that fails makes the launcher stop the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# The counter of photos done by all processes, kept in the process group's own key-value store.
_DONE_KEY = "authface/archive/done"


@dataclass
class Processes:
    """This process's place in the run (accelerate's ``PartialState``)."""

    state: object

    @classmethod
    def start(cls, device: str | None) -> Processes:
        """Join the run: a process group under ``accelerate launch`` (gloo when the model runs on the CPU)."""
        import torch
        from accelerate import PartialState

        on_cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
        return cls(PartialState(cpu=on_cpu))

    @property
    def index(self) -> int:
        return self.state.process_index

    @property
    def count(self) -> int:
        return self.state.num_processes

    @property
    def local_index(self) -> int:
        return self.state.local_process_index

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    def device_for(self, device: str | None) -> str | None:
        """The device this process runs the model on: ``device`` as given, or under a launcher this process's own
        (``cuda:<local index>``), so that N processes use N GPUs."""
        if device is not None or self.count == 1:
            return device
        return str(self.state.device)

    def main_first(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` on the main process, then on the others: the main one cleans up before anyone
        writes."""
        with self.state.main_process_first():
            return function(*args)

    def barrier(self) -> None:
        self.state.wait_for_everyone()

    def broadcast(self, value: T) -> T:
        """The main process's ``value``, on every process."""
        if self.count == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every process's ``value``, in process order (on every process)."""
        if self.count == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous part of ``items`` (accelerate's split: sizes differ by at most one)."""
        with self.state.split_between_processes(list(items)) as part:
            return list(part)

    def count_done(self, done: int) -> int:
        """Add ``done`` to the run's count of photos done and return the total of all processes (the main
        process's bar of the whole run); 0 when the run has one process or no store to count in."""
        store = _store() if self.count > 1 else None
        return 0 if store is None else store.add(_DONE_KEY, done)


def _store():
    """The process group's key-value store (torch.distributed's rendezvous store), or None without one."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return None
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError):
        return None
