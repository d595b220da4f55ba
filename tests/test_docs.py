"""The documentation is run, not just read (docs/extending.md, "Documentation that is run").

Fenced blocks in README.md and docs/*.md carry a mark after their language: ``runnable`` blocks
are executed with the installed CLI in a scratch folder, ``ci`` blocks must be lines of .ci/run,
``heavy`` blocks are parsed by the real CLI parser, ``tested`` blocks name the test that runs
them, ``toml config`` blocks are validated as grid configs. Every relative link must resolve,
and README.md stays the short front door.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
RUN_MARKS = {"runnable", "ci", "heavy", "tested"}
BLOCK_TIMEOUT_S = 60
# The exact set-up command a new user runs; .ci/run runs it too.
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest -q"
REPO_PATH = re.compile(r"^(configs|ci|results|benchmarks|methods)/")


@dataclass
class Block:
    page: Path
    line: int            # 1-based line of the opening fence
    lang: str
    marks: set[str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    out, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        words = info.split()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        out.append(Block(page, i + 1, words[0] if words else "", set(words[1:]), "\n".join(body) + "\n"))
        i = j + 1
    return out


ALL_BLOCKS = [b for page in PAGES for b in _blocks(page)]


def _commands(text: str) -> list[str]:
    """Command lines of a shell block: comments and blank lines dropped, `&&` chains split."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.extend(part.strip() for part in line.split("&&"))
    return out


def _normalise(cmd: str) -> str:
    return " ".join(cmd.replace(".venv/bin/", "").split())


# -- every shell block says how it is checked ------------------------------------------------

def test_every_shell_block_is_marked_runnable_ci_heavy_or_tested():
    unmarked = [b.where for b in ALL_BLOCKS if b.lang in SHELLS and not b.marks & RUN_MARKS]
    assert not unmarked, (f"shell blocks without a mark ({', '.join(sorted(RUN_MARKS))}); see "
                          f"docs/extending.md: {unmarked}")


# -- runnable blocks run -----------------------------------------------------------------------

def _runnable_pages() -> list[Path]:
    return sorted({b.page for b in ALL_BLOCKS if "runnable" in b.marks})


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_exit_zero(page, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for folder in ("ci", "configs"):  # a page may use the committed baseline run and configs
        shutil.copytree(ROOT / folder, work / folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTIONGRID_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MOTIONGRID_CACHE=str(tmp_path / "cache"),
               TORCH_HOME=str(tmp_path / "torch"), HF_HOME=str(tmp_path / "hf"),
               MOTIONGRID_CLEANFID_DIR=str(tmp_path / "cleanfid"))
    for n, block in enumerate(b for b in ALL_BLOCKS if b.page == page and "runnable" in b.marks):
        if block.lang == "python":
            script = work / f"block_{n}.py"
            script.write_text(block.text)
            argv = [sys.executable, str(script)]
        else:
            assert block.lang in SHELLS, f"{block.where}: runnable blocks are shell or python, not {block.lang!r}"
            argv = ["bash", "-euo", "pipefail", "-c", block.text]
        try:
            proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{block.where}: did not finish within {BLOCK_TIMEOUT_S} s:\n{block.text}")
        assert proc.returncode == 0, (f"{block.where}: exit {proc.returncode}\n{block.text}\n"
                                      f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")


# -- tested blocks are run by the test they name ------------------------------------------------

def test_tested_blocks_name_a_test_that_reads_their_page():
    problems = []
    for block in (b for b in ALL_BLOCKS if "tested" in b.marks):
        tests = [m for m in block.marks if m.startswith("tests/") and m.endswith(".py")]
        page = str(block.page.relative_to(ROOT))
        if not tests:
            problems.append(f"{block.where}: `tested` names no tests/....py file")
        for test in tests:
            path = ROOT / test
            if not path.exists() or page not in path.read_text():
                problems.append(f"{block.where}: {test} does not exist or never reads {page}")
    assert not problems, "\n".join(problems)


# -- ci blocks are what CI runs ----------------------------------------------------------------

def test_ci_blocks_are_lines_of_ci_run():
    ci_lines = {_normalise(c) for c in _commands((ROOT / ".ci" / "run").read_text())}
    missing = [f"{b.where}: {cmd}" for b in ALL_BLOCKS if "ci" in b.marks
               for cmd in _commands(b.text) if _normalise(cmd) not in ci_lines]
    assert not missing, "commands marked `ci` that .ci/run does not run:\n" + "\n".join(missing)


# -- heavy blocks parse against the real CLI ---------------------------------------------------

def _parser():
    from motiongrid.bench.cli import build_parser

    return build_parser()


def _argv(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] in ("time", "export")):
        words = words[1:]
    return words


def test_heavy_commands_parse_and_name_existing_files(capsys):
    parser, problems = _parser(), []
    for block in (b for b in ALL_BLOCKS if "heavy" in b.marks):
        for cmd in _commands(block.text):
            words = _argv(cmd)
            if not words:
                continue
            if Path(words[0]).name == "motiongrid":
                try:
                    parser.parse_args(words[1:])
                except SystemExit:
                    problems.append(f"{block.where}: {cmd}\n  {capsys.readouterr().err.strip()}")
            problems += [f"{block.where}: {cmd}\n  {w} does not exist" for w in words
                         if REPO_PATH.match(w) and not (ROOT / w).exists()]
    assert not problems, "\n".join(problems)


def _subcommands(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_motiongrid_command_named_in_any_block_exists():
    """Synopses (```text blocks) keep placeholders, but the commands and subcommands they name
    must be real ones."""
    commands, problems = _subcommands(_parser()), []
    for block in ALL_BLOCKS:
        for line in block.text.splitlines():
            line = line.strip()
            if not re.match(r"^(\S*/)?motiongrid\s", line):
                continue
            group = None
            for alt in re.sub(r"\s+#\s.*$", "", line).split(" | "):
                words = alt.split()
                if words and words[0].endswith("motiongrid"):
                    words, group = words[1:], None
                if not words or words[0].startswith("-"):  # motiongrid --help, --version
                    continue
                if words[0] in commands:
                    group, words = words[0], words[1:]
                elif group is None:
                    problems.append(f"{block.where}: `motiongrid {words[0]}` is not a command")
                    continue
                subs = _subcommands(commands[group])
                if subs and words and re.match(r"^[a-z][a-z-]*$", words[0]) and words[0] not in subs:
                    problems.append(f"{block.where}: `motiongrid {group} {words[0]}` is not a command")
    assert not problems, "\n".join(problems)


# -- config blocks are valid grid configs ------------------------------------------------------

def test_config_blocks_pass_the_checks_a_run_makes_before_it_starts():
    from motiongrid.bench.config import parse_config
    from motiongrid.bench.grid import expand_methods
    from motiongrid.bench.runner import build_run_metrics, check_tasks, load_clips

    blocks = [b for b in ALL_BLOCKS if b.lang == "toml" and "config" in b.marks]
    assert blocks, "README's tour shows a config"
    for block in blocks:
        config = parse_config(tomllib.loads(block.text), block.where)
        variants = expand_methods(config, block.where)
        check_tasks(variants, load_clips(config, block.where), block.where)
        build_run_metrics(config.metrics, config.metric_options, block.where)


# -- links ---------------------------------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text().splitlines():
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            if n:
                seen[f"{slug}-{n}"] = 1
    return set(seen)


def _links(page: Path) -> list[tuple[int, str]]:
    out, in_code = [], False
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_code = not in_code
            continue
        if in_code:
            continue
        prose = re.sub(r"`[^`]*`", "", line)  # links inside inline code are not links
        out += [(n, m.group(1)) for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)]
    return out


def test_every_relative_link_and_anchor_resolves():
    problems = []
    for page in PAGES:
        for line, target in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{line}: {target}"
            if not dest.exists():
                problems.append(f"{where}: {path} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)


def test_readme_is_the_short_front_door_with_the_exact_test_command():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "README.md is the front door: move sections into docs/"
    assert TEST_COMMAND in text
