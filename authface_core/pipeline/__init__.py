"""The AuthFace diffusion pipeline: SDXL + ControlNet on diffusers' public classes.

Modules: ``constants`` (the released inference settings, cited, and the limits we add),
``pipeline_authface_sdxl`` (the pipeline class), ``color_fix`` (wavelet / AdaIN colour correction
as pure tensor functions), ``loading`` (Hub / local / tiny checkpoints, dtype, device, memory
options) and ``tiny`` (a seeded random model of the same classes for tests and CI).

Image convention here: torch tensors are NCHW float in [0, 1] (pixels) or latents (N, 4, H/8,
W/8); NumPy images are (N, H, W, 3) or (H, W, 3) RGB uint8. Importing this package imports
neither torch nor diffusers.
"""
