"""The run directory: its file names, atomic writes, and the metrics log.

A run directory holds ``config.json`` (the resolved config), ``metrics.csv`` (one row per
meta-iteration) and ``checkpoint.pt`` (see :mod:`metarl.run.checkpoint`), and later the
evaluation results. Files are written to a temporary name and renamed, so an interrupted
write never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from metarl.config import ConfigError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"


class RunDirectoryError(ConfigError):
    """A run directory or checkpoint is missing, corrupt or incompatible."""


def atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda handle: json.dump(data, handle, indent=2))


def append_metrics(path: Path, row: dict[str, float]) -> None:
    """Append one row to ``metrics.csv``, writing the header first in a new file."""
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise RunDirectoryError(f"no {METRICS} in {str(run_dir)!r}; is it a run directory?")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def truncate_metrics(path: Path, iterations: int) -> None:
    """Drop rows past the checkpoint (an iteration logged but interrupted before saving)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = [row for row in reader if _row_iteration(row) <= iterations]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def _row_iteration(row: dict[str, str | None]) -> float:
    """A row's iteration; a row cut short by a crash counts as past every checkpoint."""
    try:
        return float("inf") if None in row.values() else int(row["iteration"] or "")
    except ValueError:
        return float("inf")
