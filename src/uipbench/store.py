"""Embedded result store: one SQLite file (WAL mode) of every expensive evaluation.

Every (model, structure, protocol, settings) evaluation is stored under a key that hashes all of them
(:func:`make_key`), as soon as it completes. A rerun skips what is stored; a run killed with SIGKILL loses only
the items that were in flight (each ``put`` is its own committed transaction, and WAL keeps the file consistent).

Records carry a JSON ``payload`` (numbers, small lists) and optionally a binary ``array`` (numpy ``.npy`` bytes:
per-atom descriptors, kernel blocks) and a ``status``: ``"ok"`` or ``"failed"`` with the ``error`` reason, so that
failures are reported, not silently dropped, and not retried on every rerun unless asked.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key      TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,      -- e.g. 'surface-static', 'bulk-relax', 'descriptor', 'dft'
    model    TEXT NOT NULL,      -- model or method name ('' when none)
    item     TEXT NOT NULL,      -- human-readable id of the structure / task
    status   TEXT NOT NULL,      -- 'ok' | 'failed'
    payload  TEXT,               -- JSON
    array    BLOB,               -- optional numpy .npy bytes
    error    TEXT,               -- reason when status = 'failed'
    seconds  REAL,               -- wall time of the evaluation
    created  REAL NOT NULL       -- unix time
);
CREATE INDEX IF NOT EXISTS results_kind_model ON results(kind, model);
"""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o: Any):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def make_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` (model name, weights checksum, structure hash, settings...)."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def structure_hash(atoms, decimals: int = 6) -> str:
    """Hash of an ASE ``Atoms`` (numbers, positions, cell, pbc), rounded so that I/O round-trips agree."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=np.float64), decimals).tobytes())
    h.update(np.round(np.asarray(atoms.cell[:], dtype=np.float64), decimals).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


def array_to_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def bytes_to_array(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


@dataclass
class Record:
    key: str
    kind: str
    model: str
    item: str
    status: str
    payload: dict | None
    error: str | None
    seconds: float | None
    created: float
    array: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ResultStore:
    """SQLite-backed store; safe to open from several processes (WAL, busy timeout), one writer at a time."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else paths.results_dir() / "results.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as con:
            con.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def checkpoint(self) -> None:
        """Merge the write-ahead log into the database file (before copying or committing the file)."""
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def __getstate__(self):  # picklable for process pools / dask: reopen on the other side
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    # -- writing ---------------------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        *,
        kind: str,
        model: str = "",
        item: str = "",
        status: str = "ok",
        payload: dict | None = None,
        array: np.ndarray | None = None,
        error: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Insert or replace one record in its own transaction (durable when this returns)."""
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be 'ok' or 'failed', got {status!r}")
        blob = array_to_bytes(array) if array is not None else None
        self._conn().execute(
            "INSERT OR REPLACE INTO results (key, kind, model, item, status, payload, array, error, seconds, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                kind,
                model,
                item,
                status,
                canonical_json(payload) if payload is not None else None,
                blob,
                error,
                seconds,
                time.time(),
            ),
        )

    def delete(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        self._conn().executemany("DELETE FROM results WHERE key = ?", [(k,) for k in keys])
        return len(keys)

    # -- reading ---------------------------------------------------------------------------------------------
    def get(self, key: str, with_array: bool = True) -> Record | None:
        cols = "key, kind, model, item, status, payload, error, seconds, created" + (", array" if with_array else "")
        row = self._conn().execute(f"SELECT {cols} FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        rec = Record(*row[:9])
        rec.payload = json.loads(rec.payload) if rec.payload is not None else None
        if with_array and row[9] is not None:
            rec.array = bytes_to_array(row[9])
        return rec

    def __contains__(self, key: str) -> bool:
        return self._conn().execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def existing(self, keys: Iterable[str], include_failed: bool = True) -> set[str]:
        """The subset of ``keys`` already stored (only successful ones when ``include_failed`` is False)."""
        keys = list(keys)
        found: set[str] = set()
        cond = "" if include_failed else " AND status = 'ok'"
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key FROM results WHERE key IN ({','.join('?' * len(chunk))}){cond}"
            found.update(r[0] for r in self._conn().execute(q, chunk))
        return found

    def frame(
        self, kind: str | None = None, model: str | None = None, keys: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """Records as a DataFrame (payload fields expanded into columns), sorted by kind, model, item."""
        q = "SELECT key, kind, model, item, status, payload, error, seconds FROM results WHERE 1=1"
        args: list = []
        if kind is not None:
            q += " AND kind = ?"
            args.append(kind)
        if model is not None:
            q += " AND model = ?"
            args.append(model)
        rows = self._conn().execute(q, args).fetchall()
        if keys is not None:
            wanted = set(keys)
            rows = [r for r in rows if r[0] in wanted]
        base = pd.DataFrame(rows, columns=["key", "kind", "model", "item", "status", "payload", "error", "seconds"])
        if base.empty:
            return base.drop(columns="payload")
        payload = pd.DataFrame([json.loads(p) if isinstance(p, str) else {} for p in base.pop("payload")])
        clash = [c for c in payload.columns if c in base.columns]
        payload = payload.rename(columns={c: f"payload_{c}" for c in clash})
        out = pd.concat([base, payload], axis=1)
        return out.sort_values(["kind", "model", "item", "key"], kind="stable").reset_index(drop=True)

    def count(self, kind: str | None = None) -> dict[str, int]:
        q = "SELECT status, COUNT(*) FROM results" + (" WHERE kind = ?" if kind else "") + " GROUP BY status"
        return dict(self._conn().execute(q, (kind,) if kind else ()).fetchall())
