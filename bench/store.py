"""The run store: one SQLite row per finished cell, written in one transaction.

Rows are keyed by the cell key (a hash of everything that determines the cell), so a resumed
run skips finished cells and can never store one twice. WAL mode keeps readers (reports)
working while a run writes, and a kill -9 loses at most the cell in progress.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from motiongrid.bench.errors import StoreError

# Recorded in SQLite's user_version so a later motiongrid can migrate. Stores written before
# versioning (user_version 0, e.g. ci/baseline) have this same schema: read as version 1.
# 2: cells.notes (what a method records about a cell, e.g. MotionFollower's guidance calls);
# a version-1 store gains the column when opened for writing.
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key            TEXT PRIMARY KEY,
    method         TEXT NOT NULL,
    label          TEXT NOT NULL,
    params         TEXT NOT NULL,      -- JSON of the validated parameters
    clip_id        TEXT NOT NULL,
    clip_hash      TEXT NOT NULL,
    seed           INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason         TEXT,               -- why it failed
    metrics        TEXT NOT NULL,      -- JSON {metric: value}; value null when it errored
    metric_errors  TEXT NOT NULL,      -- JSON {metric: reason}
    timings        TEXT NOT NULL,      -- JSON {stage: seconds}
    peak_memory_mb REAL,
    memory_kind    TEXT,               -- 'cuda_max_allocated' | 'cpu_peak_rss'
    artifact       TEXT,               -- video path relative to the run dir
    notes          TEXT NOT NULL DEFAULT '{}',  -- JSON: what the method recorded about the cell
    finished_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Set-level metrics (FID): one value per label over all its ok cells, computed after the
-- grid. ``cells`` is a digest of those cells' keys: the value is current while it matches.
CREATE TABLE IF NOT EXISTS set_metrics (
    label          TEXT NOT NULL,
    metric         TEXT NOT NULL,
    cells          TEXT NOT NULL,
    n_cells        INTEGER NOT NULL,
    result         TEXT NOT NULL,      -- JSON {metric or metric.key: value}
    error          TEXT,               -- why it could not be computed
    finished_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (label, metric)
);
"""

JSON_COLUMNS = ("params", "metrics", "metric_errors", "timings", "notes")


@dataclass
class CellResult:
    key: str
    method: str
    label: str
    params: dict
    clip_id: str
    clip_hash: str
    seed: int
    status: str = "ok"
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    metric_errors: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    peak_memory_mb: float | None = None
    memory_kind: str | None = None
    artifact: str | None = None
    notes: dict = field(default_factory=dict)


def cells_digest(keys) -> str:
    """Identity of a set of cells (set-level metrics are current while it matches)."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:20]


def _dump(value) -> str:
    # inf/nan are legitimate metric values (PSNR of identical frames); JSON keeps them as
    # Infinity/NaN which Python's json reads back.
    return json.dumps(value, sort_keys=True, allow_nan=True)


class Store:
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            # Readers (report, compare) must not touch a committed baseline: no WAL switch,
            # no schema writes, no -wal/-shm files left behind when the db is not in WAL.
            # With no -wal file no writer is active, so the file can be read as immutable
            # (no locks, no -shm); otherwise a plain read-only open sees the live writer's data.
            live = self.path.with_name(self.path.name + "-wal").exists()
            flags = "mode=ro" if live else "mode=ro&immutable=1"
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{flags}", uri=True, timeout=30)
            self._check_version(readonly=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created here with 0666 less the umask, as every other file of the run dir (SQLite
            # itself uses 0644, and gives its -wal/-shm files the database file's mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            self.conn = sqlite3.connect(self.path, timeout=30)
            # checked before anything is written: a foreign file must stay as it is
            version = self._check_version()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(cells)")}
            if "notes" not in columns:   # migrate a version 0/1 store
                self.conn.execute("ALTER TABLE cells ADD COLUMN notes TEXT NOT NULL DEFAULT '{}'")
            if version < SCHEMA_VERSION:
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.conn.row_factory = sqlite3.Row

    def _check_version(self, readonly: bool = False) -> int:
        """The file's recorded schema version (0: unversioned); StoreError, naming the file, when
        it is not a motiongrid store or was written by a newer, incompatible motiongrid."""
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(f"{self.path}: not a motiongrid results store (SQLite: {exc}); it was left "
                             f"untouched. Move it away, or use another run directory") from None
        if (tables or readonly) and "cells" not in tables:
            self.conn.close()
            raise StoreError(f"{self.path}: an SQLite file without motiongrid's 'cells' table (tables: "
                             f"{', '.join(sorted(tables)) or 'none'}); it was left untouched. Use another run directory")
        if version > SCHEMA_VERSION:
            self.conn.close()
            raise StoreError(f"{self.path}: written by a newer motiongrid (store schema {version}; this "
                             f"version reads up to {SCHEMA_VERSION}); it was left untouched. Upgrade motiongrid")
        return version

    @classmethod
    def open_existing(cls, run_dir: str | Path, readonly: bool = True) -> Store:
        path = Path(run_dir) / "results.sqlite"
        if not path.exists():
            raise FileNotFoundError(f"{run_dir}: no results.sqlite (is this a motiongrid run directory?)")
        return cls(path, readonly=readonly)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def finished_keys(self) -> set[str]:
        """Keys of cells that need no more work (status ok). Failed cells are retried."""
        return {r[0] for r in self.conn.execute("SELECT key FROM cells WHERE status = 'ok'")}

    def put(self, result: CellResult) -> None:
        row = asdict(result)
        for col in JSON_COLUMNS:
            row[col] = _dump(row[col])
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        with self.conn:  # one transaction per cell
            self.conn.execute(f"INSERT OR REPLACE INTO cells ({cols}) VALUES ({marks})", row)

    def put_set(self, label: str, metric: str, cells: str, n_cells: int, result: dict, error: str | None) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO set_metrics (label, metric, cells, n_cells, result, error) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (label, metric, cells, n_cells, _dump(result), error))

    def set_rows(self) -> list[dict]:
        """Set-level results; [] for a store written before they existed."""
        try:
            cur = self.conn.execute("SELECT * FROM set_metrics ORDER BY label, metric")
        except sqlite3.OperationalError:   # no such table (older store, opened read-only)
            return []
        return [{**dict(r), "result": json.loads(r["result"])} for r in cur]

    def rows(self) -> list[dict]:
        out = []
        for r in self.conn.execute("SELECT * FROM cells ORDER BY method, label, clip_id, seed"):
            d = dict(r)
            for col in JSON_COLUMNS:
                d[col] = json.loads(d.get(col) or "{}")
            out.append(d)
        return out

    def dataframe(self):
        """One row per cell; metric values as columns named after the metric."""
        import pandas as pd

        records = []
        for r in self.rows():
            rec = {k: v for k, v in r.items() if k not in JSON_COLUMNS}
            rec["params"] = _dump(r["params"])
            for k, v in r["timings"].items():
                rec[f"time.{k}"] = v
            for k, v in r["metrics"].items():
                rec[k] = math.nan if v is None else v
            records.append(rec)
        return pd.DataFrame.from_records(records)
