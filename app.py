"""Launch the AuthFace restoration demo: ``python app.py [--model ID_OR_FOLDER_OR_tiny] [--host H] [--port P]``.

This is also the Hugging Face Spaces entry point (``app_file: app.py``). On a ZeroGPU Space the
``spaces`` package is installed: the restoration then runs under ``spaces.GPU``; anywhere else
nothing changes. The app itself lives in ``demo/app.py``.
"""

from __future__ import annotations

import argparse
import os

try:  # ZeroGPU wants `spaces` imported before anything initialises CUDA (torch, diffusers)
    import spaces
except ImportError:
    spaces = None

from authface_core.pipeline.constants import DEFAULT_MODEL_ID, MODEL_ENV_VAR  # plain strings: no torch, no CUDA

# The longest a ZeroGPU Space may hold the GPU for one restoration: 50 SDXL steps on a few faces.
ZEROGPU_SECONDS = 120


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; defaults come from the environment, as a Space sets them."""
    parser = argparse.ArgumentParser(description="AuthFace Studio restoration demo (Gradio).")
    parser.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV_VAR),
        help="Hub id, local checkpoint folder, or 'tiny' (random-weight smoke test). "
        f"Default: ${MODEL_ENV_VAR}, else {DEFAULT_MODEL_ID}.",
    )
    parser.add_argument("--host", default=None, help="Address to serve on. Default: $GRADIO_SERVER_NAME or 127.0.0.1.")
    parser.add_argument("--port", type=int, default=None, help="Port. Default: $GRADIO_SERVER_PORT or 7860.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the demo for the chosen model and serve it until interrupted."""
    from demo.app import build_demo

    args = parse_args(argv)
    gpu = spaces.GPU(duration=ZEROGPU_SECONDS) if spaces is not None else None
    build_demo(args.model, gpu=gpu).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
