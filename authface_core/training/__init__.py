"""Training AuthFace's two stages (the authors released inference only).

- ``train_unet``: Stage I, face-oriented fine-tuning of the SDXL UNet (full or LoRA) on captioned photos.
- ``train_controlnet``: Stage II, the restoration ControlNet on synthetically degraded faces with
  the time-aware latent facial feature loss (``losses``).
- ``data``: `datasets` loading, face alignment and per-step examples; ``common``: what both share;
  ``config``: YAML/JSON config files for ``python -m authface_core train``.

The core package never imports this one. Importing it imports neither torch nor diffusers.
"""
