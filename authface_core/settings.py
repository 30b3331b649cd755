"""One description per group of settings: a frozen dataclass whose fields carry their help, range and choices.

Command-line flags, YAML config files and app widgets are all made from that one description,
so adding a setting is one edit (the field) plus its test::

    @dataclass(frozen=True)
    class RestoreConfig:
        num_inference_steps: Annotated[int, Range(1, 100)] = setting(50, "denoising steps", aliases="--steps")
        scheduler: Literal[SCHEDULER_NAMES] = setting("ddpm", "the sampler; ddpm is the released one")

        def __post_init__(self):
            check_settings(self)

- The **help** is the field's ``metadata["help"]``; :func:`settings_parser` (``transformers.HfArgumentParser``)
  turns it into ``--help`` text and makes ``--num-inference-steps`` (plus ``--num_inference_steps`` and any
  aliases) from the field name; booleans that default to true also get ``--no-<name>`` (an alias that starts
  with ``--no-`` spells that one). An optional number takes ``none`` on the command line. A class attribute
  ``_argument_group_name`` gives the class its own section of ``--help``.
- The **range** is a :class:`Range` inside ``typing.Annotated``. HfArgumentParser reads plain type hints, so
  it never sees it; :func:`check_settings` enforces it and widgets read it through :func:`describe_settings`.
- The **choices** are a ``Literal`` of a name tuple defined once in a torch-free constants module.

This module imports nothing heavy: the parser's library is imported when a parser is built.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union


@dataclass(frozen=True)
class Range:
    """The closed interval a number setting must lie in (``None``: unbounded on that side), and the step a
    slider should move by (``None``: 1 for integers, continuous for floats)."""

    low: float | None = None
    high: float | None = None
    step: float | None = None

    def __contains__(self, value) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        """'in [1, 100]', 'at least 0', 'at most 30'; whole numbers in full (a seed's 2**53 - 1 too)."""
        low, high = _format_number(self.low), _format_number(self.high)
        if self.low is not None and self.high is not None:
            return f"in [{low}, {high}]"
        return f"at least {low}" if self.low is not None else f"at most {high}"


def _format_number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def setting(default: Any = dataclasses.MISSING, help: str = "", *, aliases: str | Sequence[str] = (), **kwargs):
    """A dataclass field whose ``help`` becomes its flag's help text and its widget's label info.

    ``aliases`` are extra flag spellings (``"--steps"``); other keyword arguments go to ``dataclasses.field``.
    """
    if not help:
        raise ValueError("every setting needs its help text")
    metadata = {"help": help}
    if aliases:
        metadata["aliases"] = [aliases] if isinstance(aliases, str) else list(aliases)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclass(frozen=True)
class SettingSpec:
    """What flags, docs and widgets need to know about one setting."""

    name: str
    kind: type  # int, float, str, bool, or the annotation itself for other types
    default: Any
    help: str
    range: Range | None = None
    choices: tuple | None = None
    optional: bool = False  # None is allowed


@functools.cache
def describe_settings(cls: type) -> dict[str, SettingSpec]:
    """Every field of a settings dataclass, by name, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        kind, rng, choices, optional = _unpack_annotation(hints[field.name])
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        specs[field.name] = SettingSpec(
            field.name, kind, default, field.metadata.get("help", ""), rng, choices, optional
        )
    return specs


def _unpack_annotation(annotation) -> tuple[Any, Range | None, tuple | None, bool]:
    """(base type, range, choices, None allowed) of ``Annotated[X | None, Range(...)]`` or ``Literal[...]``."""
    rng = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        rng = next((extra for extra in extras if isinstance(extra, Range)), None)
    optional = False
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), rng, choices, optional
    return annotation, rng, None, optional


def check_settings(instance) -> None:
    """Raise ``ValueError`` naming the field and the value for any setting of the wrong type, out of its
    range or not one of its choices. Call it from ``__post_init__``."""
    for spec in describe_settings(type(instance)).values():
        value = getattr(instance, spec.name)
        if value is None:
            if not spec.optional:
                raise ValueError(f"{spec.name} must be set, got None")
            continue
        if spec.choices is not None:
            if value not in spec.choices:
                raise ValueError(f"{spec.name} must be one of {', '.join(map(str, spec.choices))}; got {value!r}")
            continue
        if not _is_instance(value, spec.kind):
            raise ValueError(f"{spec.name} must be {_kind_name(spec.kind)}, got {value!r}")
        if spec.range is not None and value not in spec.range:
            raise ValueError(f"{spec.name} must be {_kind_name(spec.kind)} {spec.range.describe()}, got {value!r}")


def _is_instance(value, kind) -> bool:
    """Type check that rejects bools as numbers and accepts ints where a float is asked."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # composite annotations (tuples, paths) are checked by the class itself


def _kind_name(kind) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def settings_to_dict(instance) -> dict:
    """Every setting as plain JSON values (sidecars and logs record them)."""
    return dataclasses.asdict(instance)


def settings_from_dict(cls: type, values: dict, *, source: str = "settings"):
    """``cls(**values)``; an unknown key is a ``ValueError`` naming ``source``, the key and the known ones."""
    unknown = sorted(set(values) - set(describe_settings(cls)))
    if unknown:
        known = ", ".join(describe_settings(cls))
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {known}")
    return cls(**values)


def settings_parser(*classes: type, **parser_kwargs):
    """An ``argparse`` parser (``transformers.HfArgumentParser``) with one flag per field of ``classes``; each
    flag's help ends with its range and default. Add positional arguments or other flags before parsing, then
    turn the Namespace back into the dataclasses with :func:`settings_from_namespace`."""
    from transformers import HfArgumentParser

    parser_kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
    parser = _settings_parser_class(HfArgumentParser)(classes, **parser_kwargs)
    specs = {name: spec for cls in classes for name, spec in describe_settings(cls).items()}
    for action in parser._actions:
        spec = specs.get(action.dest)
        if spec is None or action.const is False:  # not a setting, or a --no- flag
            continue
        if spec.range is not None and action.help:
            action.help = f"{action.help} ({spec.range.describe()})"
        if spec.optional and spec.choices is None and spec.kind in (int, float):
            action.type = _none_or(spec.kind)
    return parser


def add_settings_arguments(parser, *classes: type) -> None:
    """Add the flags of :func:`settings_parser` to an existing parser (a subcommand's, say), sections included."""
    # What ``ArgumentParser(parents=[...])`` does, for a parser that already exists.
    parser._add_container_actions(settings_parser(*classes, add_help=False))


@functools.cache
def _settings_parser_class(base: type) -> type:
    """``base`` (HfArgumentParser) where a bool setting's aliases that start with ``--no-`` spell its negative flag."""

    class SettingsArgumentParser(base):
        @staticmethod
        def _parse_dataclass_field(parser, field):
            aliases = field.metadata.get("aliases", [])
            negative = [alias for alias in aliases if alias.startswith("--no-")] if field.default is True else []
            if negative:
                field = copy.copy(field)
                field.metadata = types.MappingProxyType(
                    {**field.metadata, "aliases": [alias for alias in aliases if alias not in negative]}
                )
            base._parse_dataclass_field(parser, field)
            if negative:
                flag = f"--no-{field.name.replace('_', '-')}"
                parser.add_argument(
                    *negative, dest=field.name, action="store_false", default=argparse.SUPPRESS, help=f"same as {flag}"
                )

    return SettingsArgumentParser


def _none_or(kind: type):
    """An argparse type: ``kind(text)``, or None for ``none``."""

    def convert(text: str):
        return None if text.strip().lower() == "none" else kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in its error message
    return convert


def apply_settings_file(parser, path: str | Path) -> None:
    """Make the values of a YAML/JSON settings file the parser's defaults, so flags given after still win.

    A key that is no flag of the parser is an error naming the file and the key.
    A flag the parser requires (a field without a default) is no longer required once the file gives it.
    """
    values = read_settings_file(path)
    known = {action.dest for action in parser._actions if action.option_strings}  # flags, not internals
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    for action in parser._actions:
        if action.dest in values:
            action.required = False
    parser.set_defaults(**values)


def settings_env_argv(parser, prefix: str, environ: Mapping[str, str]) -> list[str]:
    """Flags made from environment variables named ``prefix`` + the setting's name in capitals
    (``ANNOTATE_OVERLAP=2`` -> ``--overlap 2``), for apps whose command line is fixed (a Space).

    Put them before the command line's own arguments, so that a flag given there still wins. A list
    setting's variable holds its items separated by commas or spaces.
    """
    argv: list[str] = []
    seen: set[str] = set()
    for action in parser._actions:
        skipped = (argparse._StoreFalseAction, argparse._HelpAction)  # a boolean's --no-<name> twin; --help
        if not action.option_strings or action.dest in seen or isinstance(action, skipped):
            continue
        seen.add(action.dest)
        value = environ.get(prefix + action.dest.upper())
        if value is None:
            continue
        if action.nargs in ("+", "*"):
            items = [item for item in re.split(r"[,\s]+", value.strip()) if item]
            argv += [action.option_strings[0], *items] if items else []
        else:
            argv += [action.option_strings[0], value]
    return argv


def settings_from_namespace(namespace, *classes: type) -> tuple:
    """Each of ``classes`` built from the same-named attributes of a parsed Namespace."""
    values = vars(namespace)
    return tuple(cls(**{name: values[name] for name in describe_settings(cls) if name in values}) for cls in classes)


def read_settings_file(path: str | Path) -> dict:
    """The flat ``{setting: value}`` mapping of a YAML or JSON file; errors name the file and the problem."""
    import json

    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: settings file not found")
    is_json = path.suffix.lower() == ".json"
    try:
        values = json.loads(path.read_text()) if is_json else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid {'JSON' if is_json else 'YAML'} ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of setting names to values, got {type(values).__name__}")
    return values


def settings_markdown(*classes: type) -> str:
    """A Markdown table of every setting of ``classes``: name, default (as YAML/JSON writes it), allowed values
    and help, for READMEs that list the keys of a settings file."""
    import json

    lines = ["| setting | default | allowed | what |", "|---|---|---|---|"]
    for cls in classes:
        for spec in describe_settings(cls).values():
            if spec.choices is not None:
                allowed = ", ".join(map(str, spec.choices))
            elif spec.range is not None:
                allowed = spec.range.describe()
            else:
                allowed = _kind_name(spec.kind)
            if spec.optional:
                allowed += " or null"
            default = "required" if spec.default is dataclasses.MISSING else f"`{json.dumps(spec.default)}`"
            lines.append(f"| `{spec.name}` | {default} | {allowed} | {spec.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
