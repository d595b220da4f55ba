"""What every command shares: the exit codes and the one way to report a user's error."""
from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1          # the command ran, and what it checked failed: cells failed, a regression, a bad file
    BAD_INPUT = 2       # arguments, config or files the command cannot use; nothing was run


def error(command: str, message: object) -> ExitCode:
    """Print ``motiongrid COMMAND: error: MESSAGE`` to stderr; the caller returns the code."""
    print(f"motiongrid {command}: error: {message}", file=sys.stderr)
    return ExitCode.BAD_INPUT


def parse_value(text: str):
    """A ``KEY=VALUE`` option's value as TOML (numbers, booleans, lists), else the string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
