"""Launch the restoration demo: ``authface-demo`` (or ``python -m demo``, or ``python app.py`` on a Space).

The flags come from the model settings (:class:`~authface_core.model_config.ModelConfig`) and
:class:`ServerSettings`; they are parsed before Gradio, torch or a model is imported, so ``--help`` is
quick and creates nothing. On a ZeroGPU Space the ``spaces`` package is installed: it is imported
before anything initialises CUDA, and the model's step alone (not detection, checks, paste-back or PNG
writing) runs under ``spaces.GPU``, asking for a time computed from its faces and steps
(:func:`demo.app.zero_gpu_seconds`); anywhere else nothing changes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Annotated

from authface_core.model_config import ModelConfig, add_model_arguments
from authface_core.settings import Range, add_settings_arguments, check_settings, setting, settings_from_namespace


@dataclass(frozen=True)
class ServerSettings:
    """Where the demo listens."""

    _argument_group_name = "server"

    host: str | None = setting(None, "address to serve on; None: $GRADIO_SERVER_NAME, else 127.0.0.1")
    port: Annotated[int | None, Range(1, 65535)] = setting(None, "port; None: $GRADIO_SERVER_PORT, else 7860")

    def __post_init__(self):
        check_settings(self)


def parse_args(argv: list[str] | None = None) -> tuple[ModelConfig, ServerSettings]:
    """The model and server settings of the command line (the model defaults to $AUTHFACE_MODEL, as a Space sets it)."""
    parser = argparse.ArgumentParser(
        prog="authface-demo",
        description="AuthFace Studio restoration demo (Gradio).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    add_settings_arguments(parser, ServerSettings)
    try:
        return settings_from_namespace(parser.parse_args(argv), ModelConfig, ServerSettings)
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> None:
    """Build the demo for the chosen model and serve it until interrupted."""
    model, server = parse_args(argv)
    try:  # ZeroGPU wants `spaces` imported before anything initialises CUDA (torch, diffusers)
        import spaces
    except ImportError:
        spaces = None
    from demo.app import build_demo, launch, zero_gpu_seconds

    gpu = spaces.GPU(duration=zero_gpu_seconds) if spaces is not None else None
    launch(build_demo(model, gpu=gpu), server_name=server.host, server_port=server.port)


if __name__ == "__main__":
    sys.exit(main())
