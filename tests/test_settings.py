"""The settings mechanism: one frozen dataclass gives validation, flags (with help, range, aliases) and YAML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from authface_core.settings import (
    Range,
    apply_settings_file,
    check_settings,
    describe_settings,
    setting,
    settings_env_argv,
    settings_from_dict,
    settings_from_namespace,
    settings_markdown,
    settings_parser,
)

COLOURS = ("red", "green")


@dataclass(frozen=True)
class Example:
    steps: Annotated[int, Range(1, 100)] = setting(50, "denoising steps", aliases="--n")
    strength: Annotated[float, Range(0, 1, step=0.05)] = setting(0.0, "how far from the input")
    colour: Literal[COLOURS] = setting("red", "a choice")
    seed: Annotated[int | None, Range(0, None)] = setting(123, "seed; none draws one")
    check: bool = setting(True, "run the check")
    name: str = setting("x", "free text")

    def __post_init__(self):
        check_settings(self)


def test_describe_reads_help_range_choices_and_optional():
    specs = describe_settings(Example)
    assert list(specs) == ["steps", "strength", "colour", "seed", "check", "name"]
    assert specs["steps"].kind is int and specs["steps"].range == Range(1, 100) and specs["steps"].default == 50
    assert specs["strength"].range.step == 0.05 and specs["strength"].help == "how far from the input"
    assert specs["colour"].choices == COLOURS and specs["colour"].kind is str
    assert specs["seed"].optional and not specs["steps"].optional and specs["seed"].range == Range(0, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps must be an integer in [1, 100], got 0"),
        ({"steps": 2.5}, "steps must be an integer, got 2.5"),
        ({"steps": True}, "steps must be an integer, got True"),
        ({"strength": 1.5}, "strength must be a number in [0, 1], got 1.5"),
        ({"colour": "blue"}, "colour must be one of red, green; got 'blue'"),
        ({"seed": -1}, "seed must be an integer at least 0, got -1"),
        ({"name": None}, "name must be set, got None"),
        ({"check": "yes"}, "check must be true or false, got 'yes'"),
    ],
)
def test_check_settings_names_field_and_value(changes, message):
    with pytest.raises(ValueError) as error:
        Example(**changes)
    assert str(error.value) == message


def test_valid_values_pass_and_int_is_a_number():
    assert Example(strength=1, seed=None).strength == 1
    assert Example(colour="green", steps=100).colour == "green"


def test_parser_flags_come_from_the_fields(capsys):
    parser = settings_parser(Example)
    (parsed,) = settings_from_namespace(parser.parse_args(["--n", "7", "--strength", "0.5", "--no-check"]), Example)
    assert parsed == Example(steps=7, strength=0.5, check=False)
    (parsed,) = settings_from_namespace(parser.parse_args(["--colour", "green", "--steps", "3"]), Example)
    assert parsed == Example(colour="green", steps=3)
    with pytest.raises(SystemExit):
        parser.parse_args(["--colour", "blue"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "denoising steps (in [1, 100]) (default: 50)" in help_text
    assert "--steps STEPS, --n STEPS" in help_text


def test_settings_file_gives_defaults_and_flags_win(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("steps: 9\nstrength: 0.25\n")
    parser = settings_parser(Example)
    apply_settings_file(parser, config)
    (parsed,) = settings_from_namespace(parser.parse_args(["--steps", "11"]), Example)
    assert parsed == Example(steps=11, strength=0.25)
    config.write_text("stepz: 9\n")
    with pytest.raises(ValueError, match=r"run.yaml: unknown setting\(s\) stepz"):
        apply_settings_file(settings_parser(Example), config)
    config.write_text("- a list\n")
    with pytest.raises(ValueError, match="run.yaml: expected a mapping"):
        apply_settings_file(settings_parser(Example), config)


def test_from_dict_names_unknown_keys():
    assert settings_from_dict(Example, {"steps": 3}) == Example(steps=3)
    with pytest.raises(ValueError, match=r"demo: unknown setting\(s\) stepz; known: steps, strength"):
        settings_from_dict(Example, {"stepz": 3}, source="demo")


def test_every_setting_needs_help():
    with pytest.raises(ValueError, match="help"):
        setting(1)


def test_optional_number_takes_none_on_the_command_line():
    parser = settings_parser(Example)
    (parsed,) = settings_from_namespace(parser.parse_args(["--seed", "none"]), Example)
    assert parsed.seed is None
    (parsed,) = settings_from_namespace(parser.parse_args(["--seed", "5"]), Example)
    assert parsed.seed == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "none"])  # not optional: none is no integer


@dataclass(frozen=True)
class WithNegativeAlias:
    _argument_group_name = "checks"

    check_identity: bool = setting(True, "compare faces", aliases=("--verify", "--no-identity-check"))


def test_no_aliases_spell_the_negative_flag_and_groups_are_kept(capsys):
    parser = settings_parser(WithNegativeAlias)
    for argv, expected in [([], True), (["--no-identity-check"], False), (["--no-check-identity"], False)]:
        assert settings_from_namespace(parser.parse_args(argv), WithNegativeAlias)[0].check_identity is expected
    assert parser.parse_args(["--verify", "false"]).check_identity is False
    child = __import__("argparse").ArgumentParser(parents=[settings_parser(WithNegativeAlias, add_help=False)])
    assert child.parse_args(["--no-identity-check"]).check_identity is False
    with pytest.raises(SystemExit):
        child.parse_args(["--help"])
    assert "checks:" in capsys.readouterr().out


@dataclass(frozen=True)
class Required:
    path: str = setting(help="no default: a required flag")
    steps: Annotated[int, Range(1, 100)] = setting(50, "denoising steps")


def test_a_settings_file_satisfies_a_required_flag(tmp_path):
    parser = settings_parser(Required)
    with pytest.raises(SystemExit):
        parser.parse_args([])
    config = tmp_path / "run.yaml"
    config.write_text("path: ./faces\n")
    apply_settings_file(parser, config)
    (parsed,) = settings_from_namespace(parser.parse_args([]), Required)
    assert parsed == Required(path="./faces")


def test_settings_markdown_lists_default_range_choices_and_help():
    table = settings_markdown(Example, Required)
    assert table.splitlines()[:2] == ["| setting | default | allowed | what |", "|---|---|---|---|"]
    assert "| `steps` | `50` | in [1, 100] | denoising steps |" in table
    assert '| `colour` | `"red"` | red, green | a choice |' in table
    assert "| `seed` | `123` | at least 0 or null | seed; none draws one |" in table
    assert "| `path` | required | a string | no default: a required flag |" in table


@dataclass(frozen=True)
class Team:
    members: list[str] = setting(help="who takes part", default_factory=list)
    size: Annotated[int, Range(1, 9)] = setting(2, "people per pair")
    open: bool = setting(True, "anyone may join")

    def __post_init__(self):
        check_settings(self)


def test_environment_variables_become_flags_the_command_line_overrides():
    parser = settings_parser(Team)
    environ = {"TEAM_MEMBERS": "ana, ben cleo", "TEAM_SIZE": "3", "TEAM_OPEN": "false", "OTHER_SIZE": "7"}
    argv = settings_env_argv(parser, "TEAM_", environ)
    (team,) = settings_from_namespace(parser.parse_args(argv), Team)
    assert team == Team(members=["ana", "ben", "cleo"], size=3, open=False)
    (team,) = settings_from_namespace(parser.parse_args([*argv, "--size", "4"]), Team)
    assert team.size == 4 and team.members == ["ana", "ben", "cleo"]
    assert settings_env_argv(parser, "TEAM_", {"TEAM_MEMBERS": " , "}) == []  # an empty list sets nothing
    with pytest.raises(SystemExit):
        parser.parse_args(settings_env_argv(parser, "TEAM_", {"TEAM_SIZE": "many"}))
