"""What the Ray tests read from a run directory, and how they pretend a run had not finished."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def cells(out: Path) -> dict[str, tuple]:
    """key -> (label, clip_id, seed, status, reason, metrics, metric_errors, notes, artifact), as stored."""
    conn = sqlite3.connect(out / "results.sqlite")
    try:
        rows = conn.execute("SELECT key, label, clip_id, seed, status, reason, metrics, metric_errors, notes, artifact "
                            "FROM cells").fetchall()
    finally:
        conn.close()
    return {r[0]: r[1:] for r in rows}


def drop(out: Path, labels: tuple[str, ...]) -> int:
    """Forget the cells of ``labels`` (rows and videos): a run that had not reached them yet."""
    conn = sqlite3.connect(out / "results.sqlite")
    with conn:
        marks = ",".join("?" * len(labels))
        gone = conn.execute(f"SELECT artifact FROM cells WHERE label IN ({marks})", labels).fetchall()
        conn.execute(f"DELETE FROM cells WHERE label IN ({marks})", labels)
    conn.close()
    for (artifact,) in gone:
        (out / artifact).unlink()
    return len(gone)
