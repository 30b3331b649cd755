"""bench/archive.py runs end to end (its GPU figures come from a GPU host)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

from .conftest import launch_environment


def test_the_archive_bench_runs(tmp_path):
    """bench/archive.py end to end in one process on two photos (the figures come from ``python bench/archive.py``)."""
    out = tmp_path / "bench.json"
    command = [sys.executable, str(REPO_ROOT / "bench" / "archive.py"), "--processes", "1", "--count", "2"]
    command += ["--steps", "1", "--json", str(out)]
    ran = subprocess.run(command, env=launch_environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    (record,) = json.loads(out.read_text())
    for name in ("batching off", "cross-photo batching"):
        assert record[name]["photos"] == 2 and record[name]["faces"] >= 2 and record[name]["faces_per_s"] > 0
    assert "cross-photo batching on / off" in ran.stdout


def test_the_restore_accelerate_configs_load_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    folder = REPO_ROOT / "configs" / "accelerate" / "restore"
    layouts = {}
    for path in sorted(folder.glob("*.yaml")):
        config = load_config_from_file(str(path))
        layouts[path.name] = (config.distributed_type, config.num_machines, config.num_processes, config.use_cpu)
    assert layouts == {
        "2cpu.yaml": ("MULTI_GPU", 1, 2, True),
        "2x8gpu.yaml": ("MULTI_GPU", 2, 16, False),
        "8gpu.yaml": ("MULTI_GPU", 1, 8, False),
    }
