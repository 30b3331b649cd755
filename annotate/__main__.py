"""``python -m annotate [PROJECT_FOLDER]``: launch the annotation app."""

from annotate.app import main

main()
