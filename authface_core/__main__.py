"""``python -m authface_core SUBCOMMAND ...``: see ``authface_core.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
