"""``python -m annotate [PROJECT_FOLDER] [--flags]``: launch the annotation app (``--help`` lists the flags)."""

from annotate.cli import main

main()
