"""How long a run is (epochs counted in the batches one process sees once accelerate shards the data), and the
metrics log of a resumed run."""

from __future__ import annotations

import math

import pytest
import torch

from authface_core.training.run import plan_steps
from authface_core.training.settings import OptimizationSettings


def _args(**changes) -> OptimizationSettings:
    settings = {"train_batch_size": 2, "gradient_accumulation_steps": 2, "max_train_steps": None, "num_train_epochs": 3}
    return OptimizationSettings(**{**settings, **changes})


def _dataloader(num_examples: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(list(range(num_examples)), batch_size=2, shuffle=True, drop_last=True)


@pytest.mark.parametrize("num_examples, num_processes", [(21, 1), (21, 2), (35, 8)])
def test_step_plan_counts_the_batches_one_process_sees(num_examples, num_processes):
    from accelerate.data_loader import prepare_data_loader

    dataloader = _dataloader(num_examples)
    per_process = {
        len(
            prepare_data_loader(dataloader, num_processes=num_processes, process_index=index, use_seedable_sampler=True)
        )
        for index in range(num_processes)
    }
    assert len(per_process) == 1
    plan = plan_steps(_args(), dataloader, num_processes, streaming=False)
    assert plan.updates_per_epoch == math.ceil(per_process.pop() / 2)
    assert plan.max_train_steps == 3 * plan.updates_per_epoch and plan.num_epochs == 3
    # With --max_train_steps, there are enough epochs to reach it.
    plan = plan_steps(_args(max_train_steps=25), dataloader, num_processes, streaming=False)
    assert plan.num_epochs * plan.updates_per_epoch >= 25 > (plan.num_epochs - 1) * plan.updates_per_epoch


def test_step_plan_refuses_fewer_batches_than_processes():
    with pytest.raises(ValueError, match="fewer than one per process"):
        plan_steps(_args(), _dataloader(3), num_processes=2, streaming=False)
    with pytest.raises(ValueError, match="train_batch_size 2"):
        plan_steps(_args(), _dataloader(1), num_processes=1, streaming=False)


class _MainProcess:
    """The two members of ``accelerate.Accelerator`` that ``MetricsLog`` uses."""

    is_main_process = True

    def log(self, values, step):
        pass


def test_resuming_in_the_same_folder_logs_each_step_once(tmp_path):
    from authface_core.training.checkpoints import MetricsLog, read_metrics

    interrupted = MetricsLog(_MainProcess(), tmp_path)
    for step in range(1, 6):  # the run logged steps 1-5, its last checkpoint was at step 3
        interrupted.log({"loss": 1.0 / step}, step)
    resumed = MetricsLog(_MainProcess(), tmp_path, resumed_step=3)
    for step in range(4, 7):
        resumed.log({"loss": 0.5 / step}, step)
    rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[3]["loss"] == pytest.approx(0.5 / 4)  # step 4 as the resumed run logged it
