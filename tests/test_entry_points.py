"""Every entry point answers ``--help`` quickly, imports no GUI or model to do so, and creates nothing; the
installed commands work from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.fresh_copy import install_fresh_copy

HELP_COMMANDS = [
    ["-m", "authface_core", "--help"],
    ["-m", "authface_core", "restore", "--help"],
    ["-m", "authface_core", "faces", "--help"],
    ["-m", "authface_core", "evaluate", "--help"],
    ["-m", "authface_core", "train", "--help"],
    ["-m", "authface_core", "space", "--help"],
    [str(REPO_ROOT / "app.py"), "--help"],
    ["-m", "demo", "--help"],
    ["-m", "annotate", "--help"],
]


def sandbox(tmp_path: Path) -> tuple[Path, dict]:
    """An empty working folder, and an environment whose home, caches and temp folder are empty folders too."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir(parents=True)
    home.mkdir(parents=True)
    environment = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "HF_HOME": str(home / "hf"),
        "GRADIO_TEMP_DIR": str(home / "gradio"),
        "MPLCONFIGDIR": str(home / "mpl"),
        "TMPDIR": str(home / "tmp"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    return cwd, environment


def created_files(tmp_path: Path) -> list[str]:
    return sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_help_answers_and_creates_nothing(command, tmp_path):
    cwd, environment = sandbox(tmp_path)
    probe = "import runpy, sys; sys.argv = sys.argv[1:]; "
    if command[0] == "-m":
        probe += f"sys.argv = [{command[1]!r}, *sys.argv[2:]]; target = ('module', {command[1]!r})"
    else:
        probe += f"target = ('path', {command[0]!r})"
    probe += (
        "\ntry:\n    runpy.run_module(target[1], run_name='__main__', alter_sys=True) if target[0] == 'module' "
        "else runpy.run_path(target[1], run_name='__main__')\nexcept SystemExit as done:\n"
        "    heavy = sorted({'gradio', 'torch', 'diffusers', 'dlib'} & set(sys.modules))\n"
        "    print('HEAVY', heavy, file=sys.stderr)\n    raise\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "HEAVY []" in result.stderr  # --help loads no GUI, no torch, no model
    assert created_files(tmp_path) == []


def test_installed_commands_work_from_any_directory(tmp_path):
    """A fresh copy of the tracked files, installed (no dependencies), run from an unrelated folder."""
    _, target = install_fresh_copy(tmp_path)
    cwd, environment = sandbox(tmp_path / "run")
    environment["PYTHONPATH"] = str(target)
    for command in (["authface", "restore", "--help"], ["authface-demo", "--help"]):
        result = subprocess.run(
            [sys.executable, str(target / "bin" / command[0]), *command[1:]],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "--model" in result.stdout
