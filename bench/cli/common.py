"""What every command shares: the exit codes and the one way to report a user's error."""
from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1          # the command ran, and what it checked failed: cells failed, a regression, a bad file
    BAD_INPUT = 2       # arguments, config or files the command cannot use; nothing was run
    INTERNAL = 3        # a bug in motiongrid: one line on screen, the traceback in a log file


def error(command: str, message: object) -> ExitCode:
    """Print ``motiongrid COMMAND: error: MESSAGE`` to stderr; the caller returns the code."""
    print(f"motiongrid {command}: error: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def positive_int(text: str) -> int:
    """argparse type for counts and limits: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type for counts where 0 means none."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, low: int, what: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def parse_value(text: str):
    """A ``KEY=VALUE`` option's value as TOML (numbers, booleans, lists), else the string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
