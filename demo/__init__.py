"""The restoration demo (Gradio). ``demo.app.build_demo()`` builds it; ``demo.__main__.main`` launches it
(the ``authface-demo`` command, ``python -m demo`` and the root ``app.py``, the Spaces entry point)."""
