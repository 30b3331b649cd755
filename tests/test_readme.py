"""Every command block of the README runs, on a fresh copy of the repository installed as a user would, with the
tiny model, and exits 0 (a server command must serve its page). The test-suite block is ``.ci/run`` itself, so it
is compared, not run. The Space deploy commands run against a local stand-in of the Hub."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.fresh_copy import install_fresh_copy

SERVER_COMMANDS = ("authface-demo", "python app.py", "python -m demo")
# The install step of the quick start: the fresh copy is installed already (installing it again here would
# re-point the environment's editable install), so only what follows it runs.
INSTALL_PREFIX = "pip install -r requirements.txt -e . && "
HUB_COMMANDS = ("authface space",)
SERVER_START_TIMEOUT_S = 240


def bash_blocks(readme: str) -> list[tuple[str, str]]:
    """(section heading, block) of every ```bash block, in order."""
    blocks = []
    for section in re.split(r"\n(?=## )", readme):
        heading = section.splitlines()[0]
        blocks += [(heading, block) for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]
    return blocks


def command_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory, astronaut):
    """The tracked files copied and installed (no dependencies) into a folder of their own, plus a folder of
    photos for the examples, and an environment whose home and caches are empty and whose model is tiny."""
    clone, site = install_fresh_copy(tmp_path_factory.mktemp("readme"))
    from PIL import Image

    (clone / "photos").mkdir()
    Image.fromarray(astronaut).save(clone / "photos" / "astronaut.png")
    home = clone.parent / "home"
    home.mkdir()
    environment = {
        **os.environ,
        "PATH": f"{site / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(site),
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "AUTHFACE_MODEL": "tiny",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    return clone, environment


def test_the_test_block_is_what_ci_runs():
    readme = (REPO_ROOT / "README.md").read_text()
    ci_command = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert any(command_lines(block) == [ci_command] for _, block in bash_blocks(readme))


def test_the_quick_start_installs_and_starts_the_app_in_one_command():
    first_block = command_lines(bash_blocks((REPO_ROOT / "README.md").read_text())[0][1])
    assert first_block == [f"{INSTALL_PREFIX}authface-demo"]
    requirements = (REPO_ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements.splitlines()  # the pinned CPU wheel, never an unpinned CUDA build


@pytest.fixture
def hub(tmp_path):
    """A local stand-in of the Hub, for the Space deploy commands."""
    from tests.annotation.hub_standin import HubStandIn

    with HubStandIn(tmp_path / "hub") as standin:
        yield standin


def test_every_command_block_runs_and_exits_0(fresh_copy, hub):
    clone, environment = fresh_copy
    hub_environment = {
        **environment,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_readmeStandInToken",
        "ANNOTATE_DATASET_TOKEN": "hf_readmeDatasetToken",
    }
    ci_command = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    ran = []
    for heading, block in bash_blocks((clone / "README.md").read_text()):
        if command_lines(block) == [ci_command]:
            continue
        for line in command_lines(block):
            line = line.removeprefix(INSTALL_PREFIX)
            started = time.monotonic()
            if line.startswith(SERVER_COMMANDS) and "--help" not in line:
                serve_once(line, clone, environment)
            else:
                env = hub_environment if line.startswith(HUB_COMMANDS) else environment
                result = subprocess.run(
                    ["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=900
                )
                assert result.returncode == 0, f"{heading}: {line}\n{result.stderr[-3000:]}"
            ran.append(f"{time.monotonic() - started:6.1f} s  {line}")
    print("\n".join(ran))
    assert len(ran) >= 8  # the blocks were found
    assert hub.files("your-name/authface-studio", "space") and hub.files("your-name/authface-annotate", "space")
    assert (clone / "restored" / "astronaut.png").is_file() and (clone / "report" / "results.md").is_file()


def serve_once(line: str, cwd: Path, environment: dict) -> None:
    """Start a server command, wait for its page, then stop it (its whole process group, which it alone is in)."""
    port = free_port()
    server = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        cwd=cwd,
        env={**environment, "GRADIO_SERVER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"{line} exited with {server.returncode}: {server.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"{line} did not serve within {SERVER_START_TIMEOUT_S} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
