"""Files as people make them, and names as files can hold them.

``read_text``: the one way user text files (configs, manifests, prompt files) are read: UTF-8
with or without a byte-order mark (Excel's "CSV UTF-8" and Notepad write one), UTF-16 with a
BOM (Excel's "Unicode text"), CRLF or CR line endings read as LF. Anything else is one error
naming the file.

``file_stem``: the one way a user's name (a clip id, a label) becomes part of a file name.
Distinct names always give distinct stems, on case-insensitive file systems too, and non-ASCII
names stay distinct (they are not all folded to "_").
"""
from __future__ import annotations

import codecs
import hashlib
import os
import re
from pathlib import Path

from motiongrid.bench.errors import UserError


class TextFileError(UserError, ValueError):
    """A text input that is not in an encoding motiongrid reads; the message names it."""


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(path: str | os.PathLike) -> str:
    """The text of ``path`` with any BOM dropped and every line ending as "\\n"."""
    data = Path(path).read_bytes()
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            f"save it as UTF-8 (e.g. Excel: \"CSV UTF-8\")") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# What a stem may keep verbatim: lower-case ASCII letters, digits, '_', '-', '.' (not first).
_PLAIN = re.compile(r"[a-z0-9_-][a-z0-9._-]{0,79}")


def file_stem(name: str) -> str:
    """``name`` as a file-name stem: itself when it is plain (lower-case ASCII, digits, ``_-.``),
    else a readable ASCII part plus 8 hex digits of the name's sha256, so that "a b", "a_b",
    "A_b" and "视频一" / "视频二" never share a file."""
    if _PLAIN.fullmatch(name):
        return name
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:60]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest
