"""The README's command vocabulary (issue 22) is what ``--help`` says: every flag of every
row exists on every command the row names, and shows in that command's help."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from psplava import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows() -> list[tuple[list[str], list[str]]]:
    text = README.read_text()
    table = text.split("<!-- vocabulary:start -->")[1].split("<!-- vocabulary:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        flag_cell, _, commands = [c.strip() for c in line.strip("|").split("|")]
        flags = re.findall(r"`(-[-\w]+)`", flag_cell)
        rows.append((flags, [c.strip() for c in commands.split(",")]))
    return rows


def _commands() -> dict[str, argparse.ArgumentParser]:
    cli._register_stage_commands()
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    found[" ".join(prefix + [name])] = sub
                    walk(sub, prefix + [name])
    walk(cli.build_parser(), [])
    return found


def test_readme_vocabulary_matches_help():
    commands = _commands()
    rows = _rows()
    assert len(rows) >= 10
    for flags, names in rows:
        for name in names:
            assert name in commands, f"README names an unknown command {name!r}"
            parser = commands[name]
            options = {o for a in parser._actions for o in a.option_strings}
            help_text = parser.format_help()
            for flag in flags:
                assert flag in options, f"{name} has no {flag} (README says it does)"
                assert flag in help_text, f"{name} --help does not show {flag}"


def test_every_command_states_its_defaults():
    for name, parser in _commands().items():
        for a in parser._actions:
            if a.option_strings and a.default not in (None, False, [], argparse.SUPPRESS) \
                    and a.help not in (None, argparse.SUPPRESS):
                assert "default" in a.help, f"{name} {a.option_strings[0]}: help hides the " \
                                            f"default {a.default!r}"
