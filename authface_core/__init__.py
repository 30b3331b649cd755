"""AuthFace Studio's engine: authentic blind face restoration with a face-oriented SDXL prior.

Imports flow one way: ``io -> faces -> pipeline -> restore -> apps``; ``training``, ``metrics``
and ``annotation`` sit beside them. Importing this package imports neither torch nor dlib.
"""

__version__ = "0.1.0"
