"""Hugging Face Spaces entry point (``app_file: app.py``): ``python app.py [--model ...] [--host H] [--port P]``.

The demo lives in ``demo/`` (``demo/app.py`` builds it, ``demo/__main__.py`` parses the flags and
launches it); installed, the same command is ``authface-demo``.
"""

from demo.__main__ import main

if __name__ == "__main__":
    main()
