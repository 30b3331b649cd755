"""Restore a whole archive: many photos, many processes (``accelerate launch``), folders or datasets.

The ``restore`` command runs through this package, with one process or many:

- ``config.py``: :class:`ArchiveConfig`, the settings of a run (its flags are ``restore``'s).
- ``sources.py``: the photos to restore, each an :class:`ArchiveItem` with a key (its relative file name, or
  a dataset id) that names its outputs, its noise (``restore.face_seeds``) and its line in the resume ledger.
- ``engine.py``: the photos of one process in order: detection and paste-back in worker threads, faces of one
  photo (or, with cross-photo batching, of many) in fixed-size batches on the model, results per photo.
- ``shards.py``: Parquet shards of results, written whole (a killed run loses no finished shard), and appended
  to a Hub dataset repo through :mod:`authface_core.hub`.
- ``processes.py``: which process this is and the collective steps, on accelerate's ``PartialState``.
- ``plan.py``: the dry run: files, faces, FLOPs and GPU time.
- ``run.py``: the run itself: what is left, split between processes, restored, written, summed up.

Nothing here imports torch, accelerate or datasets at import time.
"""
