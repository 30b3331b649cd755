"""Named constants of the pipeline: the released inference settings, then the choices we add.

Released settings are copied verbatim from the public repository.

Source: ``EthanLiang99/AuthFace`` @ cf453b6, ``test_face_xl.py`` (argparse defaults, lines
436-450) and ``option/test/test_base.sh``; see ../shared/AUTHFACE_RELEASE.md sections 2-4.
The string literals join without spaces exactly as Python concatenates them there.
"""

from __future__ import annotations

DEFAULT_MODEL_ID = "Ethanliang99/AuthFace"
MODEL_ENV_VAR = "AUTHFACE_MODEL"

# test_face_xl.py:437-443 (``--added_prompt``, the only prompt the script reads).
RELEASED_PROMPT = (
    "hyper-realistic portrait, face close-up, super detailed, Cinematic, High Contrast, highly detailed, "
    "taken using a Canon EOS R camera,"
    "hyper detailed photo - realistic maximum detail, 32k, ultra HD,"
    "extreme meticulous detailing, skin pore detailing,"
    "hyper sharpness, perfect without deformations"
)
# test_face_xl.py:445-450.
RELEASED_NEGATIVE_PROMPT = (
    "unreal face, asymmetrical eyes, oil painting, illustration, drawing, art, sketch,"
    "cartoon, CG Style, 3D render, unreal engine, blurring, dirty, messy, "
    "worst quality, low quality, frames, watermark, signature, jpeg artifacts, "
    "deformed, lowres, over-smooth, malformed/disproportionate hands/fingers, ugly, easy negative"
)
# test_base.sh: ``--guidance_scale 8 --num_inference_steps 50 --process_size 512``; set_seed(123).
RELEASED_GUIDANCE_SCALE = 8.0
RELEASED_NUM_INFERENCE_STEPS = 50
RELEASED_SEED = 123
RELEASED_FACE_SIZE = 512
RELEASED_CONDITIONING_SCALE = 1.0
RELEASED_COLOR_FIX = "wavelet"

# Choices this project adds on top of the release (each validated where it is used).
MAX_INFERENCE_STEPS = 100
SCHEDULER_NAMES = ("ddpm", "dpmpp", "unipc", "ddim", "euler")  # "ddpm" is the released one
COLOR_FIX_METHODS = ("wavelet", "adain", "none")  # "wavelet" is the released default
# How much of the model stays on the GPU (pipeline/loading.py): all, model CPU offload, sequential offload.
MEMORY_PRESETS = ("full", "12gb", "8gb")
