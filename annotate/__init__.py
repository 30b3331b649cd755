"""The annotation app (see ``annotate/app.py``); ``python -m annotate`` launches it."""
