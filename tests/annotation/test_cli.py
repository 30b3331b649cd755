"""Starting the app: settings from one dataclass (flags, ANNOTATE_* variables, --config), --help that creates
nothing, any working directory, the installed entry point, and a start in Space mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from annotate.cli import describe_mode, parse_args
from authface_core.annotation.config import AnnotationSettings, hosted_mode
from authface_core.annotation.reviewers import ReviewerPolicy

from .space import SPACE_ENV, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("ANNOTATE_", "SPACE_"))}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**environ, **(env or {})}, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("entry", ["-m annotate", "annotate/app.py"])
def test_help_prints_the_settings_and_creates_nothing_from_any_folder(tmp_path, entry):
    """Issue 11: --help created a project folder named --help and started a server."""
    args = entry.split() if entry.startswith("-m") else [str(REPO_ROOT / entry)]
    env = {"PYTHONPATH": str(REPO_ROOT)} if entry.startswith("-m") else {"PYTHONPATH": ""}  # the file finds its repo
    done = _run([*args, "--help"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    for flag in ("--port", "--reviewers", "--admins", "--source_folders", "--repo_id", "--publish_notes", "--auth"):
        assert flag in done.stdout
    assert "ANNOTATE_<NAME>" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_settings_come_from_a_config_file_the_environment_and_flags_each_winning_over_the_last(tmp_path):
    config = tmp_path / "project.yaml"
    config.write_text("repo_id: lab/pairs\noverlap: 3\nlicense: cc-by-4.0\n")
    environ = {"ANNOTATE_REVIEWERS": "ana, Ben", "ANNOTATE_OVERLAP": "2", "ANNOTATE_ROOT": "/data/annotation"}
    settings = parse_args(["--config", str(config), "--port", "7999"], environ)
    assert settings == AnnotationSettings(
        root="/data/annotation",
        port=7999,
        reviewers=["ana", "Ben"],
        overlap=2,
        repo_id="lab/pairs",
        license="cc-by-4.0",
    )
    assert parse_args(["my-project", "--overlap", "4"], environ).root == "my-project"
    assert parse_args(["--overlap", "4"], environ).overlap == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "port must be an integer in [1, 65535], got 0"),
        (["--license", "mit\nprivate: false"], "license must be a licence id"),
        (["--repo_id", "no-namespace"], "repo_id must be 'namespace/name'"),
        (["--auth", "password"], "invalid choice: 'password'"),
    ],
)
def test_bad_settings_stop_before_anything_is_made(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_args([str(tmp_path / "project"), *argv], {})
    assert message in capsys.readouterr().err
    assert not (tmp_path / "project").exists()


def test_the_mode_is_hosted_on_a_space_and_local_elsewhere():
    space = {"SPACE_ID": "lab/annotate"}
    assert hosted_mode(AnnotationSettings(), space) and not hosted_mode(AnnotationSettings(), {})
    assert hosted_mode(AnnotationSettings(auth="hf"), {})  # the hosted rules, tried locally
    with pytest.raises(ValueError, match="a Space is reachable by anyone"):
        hosted_mode(AnnotationSettings(auth="local"), space)
    settings = AnnotationSettings(reviewers=["ana"], admins=["lead"], repo_id="lab/pairs")
    hosted = describe_mode(settings, ReviewerPolicy.from_settings(settings, hosted=True), "/data", "0.0.0.0:7860")
    assert "HOSTED mode" in hosted and "reviewers: ana" in hosted and "adjudicators: nobody" in hosted
    local = describe_mode(settings, ReviewerPolicy.from_settings(settings, hosted=False), "/p", "127.0.0.1:7860")
    assert "LOCAL mode" in local and "this machine only" in local and "publishes to lab/pairs" in local


def test_the_package_installs_the_app_and_its_entry_point():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "annotate*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert set(project["tool"]["setuptools"]["package-data"]["annotate"]) >= {"*.js", "*.css"}
    module, _, function = project["project"]["scripts"]["authface-annotate"].partition(":")
    assert (module, function) == ("annotate.cli", "main")
    requirements = (REPO_ROOT / "requirements.txt").read_text().split()
    assert "gradio[oauth]==6.31.0" in requirements  # OAuth on a Space needs authlib and itsdangerous


def test_the_app_starts_in_space_mode(tmp_path):
    """Issue 10: on a Space the app died at start (ImportError: Cannot initialize OAuth ... gradio[oauth])."""
    port = free_port()
    env = {
        **SPACE_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        "GRADIO_SERVER_NAME": "127.0.0.1",  # a Space sets 0.0.0.0; this test stays on the machine
        "ANNOTATE_REVIEWERS": "ana,ben",
        "ANNOTATE_ROOT": str(tmp_path / "data"),
        "ANNOTATE_PORT": str(port),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    (tmp_path / "tmp").mkdir()
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ANNOTATE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "annotate"],
        cwd=tmp_path,
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        config = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert server.poll() is None, server.communicate()[0]
        assert config is not None and config.status_code == 200
        assert config.json()["run_history"] is False
        login = httpx.get(f"http://127.0.0.1:{port}/login/huggingface", timeout=10)
        assert login.status_code != 404  # Gradio's OAuth routes are there
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "HOSTED mode" in output and "reviewers: ana, ben" in output
    assert (tmp_path / "data" / "review.sqlite").is_file()
    assert server.returncode == 0 and list((tmp_path / "tmp").glob("annotate-hand-out-*")) == []  # a clean stop
