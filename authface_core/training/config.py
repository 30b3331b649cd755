"""Training config files: a flat YAML (or JSON) mapping of a stage script's flags to values.

    pretrained_model_name_or_path: stabilityai/stable-diffusion-xl-base-1.0
    resolution: 512
    gradient_checkpointing: true        # a switch: true adds the flag, false leaves it out
    validation_prompts: [a portrait]    # a list: the flag followed by each item

Keys are the flag names without ``--`` (see ``--help`` of the stage's script); ``--set KEY=VALUE``
on the command line overrides a setting. Multi-GPU and multi-node runs put their
process layout in an accelerate config instead (``configs/accelerate/``).
"""

from __future__ import annotations

import json
from pathlib import Path


def load_config(path: str | Path) -> dict:
    """The settings of a .yaml/.yml/.json config file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            settings = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    else:
        import yaml

        try:
            settings = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a mapping of flag names to values, got {type(settings).__name__}")
    return settings


def config_to_argv(settings: dict) -> list[str]:
    """{flag: value} -> ["--flag", "value", ...]: true adds a switch, false/null leave the flag out, lists expand."""
    argv: list[str] = []
    for key, value in settings.items():
        flag = f"--{key}"
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        elif isinstance(value, dict):
            raise ValueError(f"setting {key!r} is a mapping; config files are flat (flag: value)")
        else:
            argv += [flag, str(value)]
    return argv


def apply_overrides(settings: dict, overrides: list[str]) -> dict:
    """``settings`` updated by "key=value" strings, each value read as YAML (``true``, ``10``, ``[a, b]``)."""
    import yaml

    updated = dict(settings)
    for item in overrides:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"override {item!r} must look like key=value")
        updated[key.lstrip("-")] = yaml.safe_load(value) if value else None
    return updated
