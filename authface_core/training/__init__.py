"""Training AuthFace's two stages (the authors released inference only).

- ``train_unet``: Stage I, face-oriented fine-tuning of the SDXL UNet (full or LoRA) on captioned photos.
- ``train_controlnet``: Stage II, the restoration ControlNet on synthetically degraded faces with
  the time-aware latent facial feature loss (``losses``).
- ``settings``: every setting, one frozen dataclass per group (flags, YAML keys and ``--help``).
- ``diffusion``: the diffusion math (noise, targets, x0 prediction, Min-SNR) as pure tensor functions.
- ``data``: `datasets` loading, face alignment and per-step examples; ``cache``: encodings computed once.
- ``run``: accelerator, base models, optimisers, step plan, batches, resuming, EMA.
- ``checkpoints``: checkpoint folders, the metrics log and the exported model; ``validation``: its images and scores.

The core package never imports this one. Importing it imports neither torch nor diffusers.
"""
