"""Formatting shared by every report output: numbers, Markdown escaping, the Jinja environments.

User text (prompts, clip ids, labels, failure reasons) is escaped by the environment, never by a
template: HTML through Jinja autoescape, Markdown through a ``finalize`` hook. ``Markup`` marks
text we built ourselves (numbers, link targets) as already safe for both.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"


def fmt(x: float | None) -> Markup:
    """A number for display. Markup: digits and signs need no escaping in either output, and
    Markdown escaping would otherwise backslash the CI's brackets."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return Markup("—")
    if math.isinf(x):
        return Markup("∞" if x > 0 else "−∞")
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return Markup(f"{x:.3g}")
    return Markup(f"{x:.4g}" if abs(x) < 1000 else f"{x:.0f}")


def fmt_signed(x: float) -> Markup:
    """A difference: an explicit + on gains, so a reader sees the sign without looking twice."""
    if math.isnan(x):
        return Markup("—")
    if x == 0:
        return Markup("0")
    return Markup("+") + fmt(x) if x > 0 else fmt(x)


def fmt_ci(lo: float, hi: float) -> Markup:
    # Nothing when unknown (n=1, non-finite values) or degenerate (every value equal).
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        return Markup("")
    return Markup(f"[{fmt(lo)}, {fmt(hi)}]")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(value) -> str:
    """Markdown-escape user text: characters that start inline markup are backslashed, HTML is
    entity-encoded (Markdown passes raw HTML through), and newlines become spaces so a value
    cannot break a table row. ``Markup`` values (our own link targets) pass unchanged."""
    if isinstance(value, Markup):
        return str(value)
    text = _MD_SPECIAL.sub(r"\\\1", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def template_env(markdown: bool) -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=not markdown, finalize=md_escape if markdown else None,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = fmt
    env.filters["wbr"] = wbr
    return env


def wbr(text) -> Markup:
    """HTML with line-break opportunities after '.', '_' and ',' (long metric names and labels
    in narrow table headers); each piece is escaped first."""
    parts = re.split(r"(?<=[._,])", str(text))
    return Markup("<wbr>").join(escape(p) for p in parts)


def md_code_block(text: str, lang: str = "") -> Markup:
    """A fenced block that the text cannot close: the fence is longer than any backtick run in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markup(f"{fence}{lang}\n{text}\n{fence}")
