"""``motiongrid weights list|fetch|verify|import``."""
from __future__ import annotations

from motiongrid.bench.cli.common import ExitCode, error
from motiongrid.bench.weights import WeightsMissing, WeightsOffline, entries, fetch, get, import_dir, locate, verify

# verify() states: the digest matched; present but no digest is known; size/digest/format wrong
STATUS_STYLE = {"verified": "[green]verified[/green]", "unverified": "[yellow]unverified[/yellow]",
                "wrong": "[red]WRONG[/red]", "missing": "[red]missing[/red]"}


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="motiongrid weights")
    problems: list[str] = []
    for col in ("name", "status", "location", "size", "sha256", "used by"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "status"))  # greppable
    for entry in entries():
        check = verify(entry.name)
        path = check.path
        shown = path or entry.target()
        size = None
        if path is not None and path.is_file():
            size = path.stat().st_size
        status = STATUS_STYLE[check.state]
        problems += [f"{entry.name}: {check.detail}"] if check.state == "wrong" else []
        table.add_row(entry.name, status, str(shown), _fmt_size(size if size is not None else entry.size),
                      (entry.sha256[:12] + ("…" if len(entry.sha256) > 12 else "")) if entry.sha256 else "-",
                      ", ".join(entry.used_by))
    Console().print(table)
    for entry in entries():
        if entry.note:
            Console().print(f"note: {entry.name}: {entry.note}", markup=False)
    for line in problems:
        Console().print(line, markup=False)
    if any(locate(e.name) is None for e in entries(load_all=False)):
        Console().print("missing: `motiongrid weights fetch NAME` (network) or `motiongrid weights import DIR`")
    return ExitCode.OK


def _cmd_fetch(args) -> int:
    names = [e.name for e in entries()] if args.name == "all" else [get(args.name).name]  # unknown: exit 2
    failed = 0
    for name in names:
        try:
            if not args.into and locate(name) is not None and not args.force:
                print(f"{name}: already available at {locate(name)}")
                continue
            print(f"{name}: fetched to {fetch(name, into=args.into)}")
        except (WeightsMissing, OSError) as exc:
            failed += 1
            print(f"{name}: FAILED: {exc.args[0] if exc.args else exc}")
            if isinstance(exc, WeightsOffline):
                break  # every other entry would fail the same way
    return ExitCode.FAILED if failed else ExitCode.OK


def _cmd_verify(args) -> int:
    names = [get(n).name for n in args.names] or [e.name for e in entries()]  # an unknown name: exit 2
    bad = 0
    for name in names:
        check = verify(name)
        bad += not check.ok
        print(f"{name}: {'ok' if check.ok else 'FAIL'} ({check.state}): {check.detail}")
    return ExitCode.FAILED if bad else ExitCode.OK


def _cmd_import(args) -> int:
    try:
        results = import_dir(args.dir, overwrite=args.overwrite)
    except FileNotFoundError as exc:
        return error("weights import", exc)
    for r in results:
        print(f"{r.name}: {r.status}: {r.detail}")
    return ExitCode.FAILED if any(r.status == "rejected" for r in results) else ExitCode.OK


def register(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, fetch, verify or import weight files")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    sp = sub.add_parser("list", help="table of every registered weight file and whether it is here")
    sp.set_defaults(func=_cmd_list)
    sp = sub.add_parser("fetch", help="download NAME (or 'all') on a machine with network")
    sp.add_argument("name")
    sp.add_argument("--into", metavar="DIR", help="write to DIR/<name>/ for `weights import DIR` elsewhere")
    sp.add_argument("--force", action="store_true", help="download even if already available")
    sp.set_defaults(func=_cmd_fetch)
    sp = sub.add_parser("verify", help="check sizes and sha256 of the files present")
    sp.add_argument("names", nargs="*")
    sp.set_defaults(func=_cmd_verify)
    sp = sub.add_parser("import", help="install weight files copied from another machine")
    sp.add_argument("dir")
    sp.add_argument("--overwrite", action="store_true")
    sp.set_defaults(func=_cmd_import)
