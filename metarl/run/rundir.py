"""The run directory: its file names, its lock, atomic writes, output paths, the metrics log.

A run directory holds ``config.json`` (the resolved config), ``metrics.csv`` (one row per
meta-iteration) and ``checkpoint.pt`` (see :mod:`metarl.run.checkpoint`), and later the
evaluation results. Files are written to a temporary name and renamed, so an interrupted
write never leaves a half-written file; a writer holds ``.lock`` (an exclusive ``flock``), so
two processes never write one run.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

from metarl.config import ConfigError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"
LOCK = ".lock"
RUN_FILES = (CHECKPOINT, CONFIG, METRICS, LOCK)
"""The files that make a run; no output of another command may replace them."""


class RunDirectoryError(ConfigError):
    """A run directory or checkpoint is missing, corrupt or incompatible."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(path: Path, write: Callable[[IO[Any]], object], binary: bool) -> str:
    """Write a temporary file beside ``path`` (mode as the umask says) and return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") \
                as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it."""
    write_set({Path(path): (write, binary)})


def write_set(files: Mapping[Path, tuple[Callable[[IO[Any]], object], bool]]) -> None:
    """Write several files that belong together (``path -> (write, binary)``): every one to a
    temporary file first, and only when all are written, rename them into place. An
    interrupted call leaves the previous set as it was. A path that exists and is not a
    regular file (a device, a pipe, a link) is never replaced."""
    for path in files:
        _check_replaceable(Path(path), "output")
    written: dict[Path, str] = {}
    try:
        for path, (write, binary) in files.items():
            written[Path(os.path.realpath(path))] = _temporary(
                Path(os.path.realpath(path)), write, binary)
    except BaseException:
        for tmp in written.values():
            os.unlink(tmp)
        raise
    with uninterruptible():
        for path, tmp in written.items():
            os.replace(tmp, path)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Hold Ctrl-C and ``SIGTERM`` back while the block runs (they take effect when it ends),
    so a set of renames that publishes one output is never cut in half. Python runs signal
    handlers in the main thread only: in another thread nothing can cut the block, and this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, FrameType | None]] = []
    previous = {number: signal.signal(number, lambda *caught: held.append(caught))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for held_number, frame in held[:1]:
            handler = previous[signal.Signals(held_number)]
            if callable(handler):
                handler(held_number, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(held_number)


def _check_replaceable(path: Path, flag: str) -> None:
    """Refuse a path that exists and is not a regular file: renaming over it would replace a
    device (``/dev/null``), a pipe or a symbolic link's target name with a file."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise RunDirectoryError(f"{flag} {str(path)!r} is {kind}; metarl writes only regular "
                                "files: name a file path")


def strict_json(data: Any) -> str:
    """``data`` as strict JSON text: NaN and infinities (a diverged return, say) become
    ``null``, which every JSON reader accepts."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    return json.dumps(plain(data), indent=2, allow_nan=False)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically as strict JSON (:func:`strict_json`)."""
    text = strict_json(data)
    atomic_write(path, lambda handle: handle.write(text))


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (call it holding the lock)."""
    for leftover in Path(folder).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock (creating the directory); a second writer gets
    a :class:`RunDirectoryError` naming the process that holds it."""
    check_output_dir(run_dir, "--out")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_umask())
    except OSError:
        if lock.is_symlink():
            raise RunDirectoryError(f"{str(lock)!r} is a symbolic link; metarl will not write "
                                    "through it: remove it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunDirectoryError(f"{str(lock)!r} is not a regular file: remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirectoryError(
                f"run directory {str(run_dir)!r} is in use by another metarl process "
                f"(pid {holder}); wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_output_dir(path: Path, flag: str) -> None:
    """Refuse, before any work, a folder that cannot be written: an empty name, a file."""
    if str(path).strip() in ("", "."):
        raise RunDirectoryError(f"{flag} must name a folder, got {str(path)!r}")
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{flag} {str(path)!r} is a file, not a folder")
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"{flag} {str(path)!r}: {str(existing)!r} is not writable")


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written, that is not a regular
    file (a device such as ``/dev/null``, a pipe, a link), or that would replace a file of a
    run directory (``checkpoint.pt``, ``metrics.csv``, ``config.json``, ``.lock``), however the
    path is spelled (``RUN/x/../checkpoint.pt``)."""
    if not str(path).strip():
        raise RunDirectoryError(f"{flag} must name a file, got {str(path)!r}")
    if path.is_dir():
        raise RunDirectoryError(f"{flag} {str(path)!r} is a folder; name a file in it")
    _check_replaceable(path, flag)
    resolved = Path(os.path.realpath(path))
    if resolved.name in RUN_FILES and (resolved.parent / CHECKPOINT).exists():
        raise RunDirectoryError(f"{flag} {str(path)!r} would replace a file of the run in "
                                f"{str(resolved.parent)!r}; choose another name")
    check_output_dir(resolved.parent, flag)


def append_metrics(path: Path, row: dict[str, float]) -> None:
    """Append one row to ``metrics.csv``, writing the header first in a new file; a row whose
    columns differ from the file's header is refused."""
    if path.exists():
        header = _read(path)[0]
        if header != list(row):
            raise RunDirectoryError(
                f"{str(path)!r} has the columns {header}, the new row {list(row)}; the run "
                "directory holds another run's log: choose another --out"
            )
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def check_metrics_header(path: Path, columns: list[str]) -> None:
    """Refuse a metrics log whose header is not ``columns`` (the checkpoint's record of it;
    empty when the checkpoint has no rows yet)."""
    if columns and path.exists() and _read(path)[0] != columns:
        raise RunDirectoryError(
            f"{str(path)!r} has the columns {_read(path)[0]}, the checkpoint's log "
            f"{columns}; the run directory holds another run's log: choose another --out"
        )


def _read(path: Path) -> tuple[list[str], list[dict[str, str | None]]]:
    """The header and rows of a metrics file; unreadable text is a :class:`RunDirectoryError`."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise RunDirectoryError(f"{str(path)!r} is not a metrics log ({error})") from None
    complete = rows[:-1]  # the last row may be cut short by a crash: truncation drops it
    if fields[:1] != ["iteration"] or any(None in row or None in row.values()
                                          for row in complete):
        raise RunDirectoryError(f"{str(path)!r} is not a metrics log (a header starting with "
                                "'iteration' and rows of as many values)")
    return fields, rows


def read_metrics(run_dir: Path, required: tuple[str, ...] = ()) -> list[dict[str, float]]:
    """The complete rows of a run's ``metrics.csv`` as numbers, ``required`` columns checked.
    A last row cut short by a crash is left out; anything else that is not a number (or an
    iteration that is not a whole number) is a :class:`RunDirectoryError` naming the row and
    column."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise RunDirectoryError(f"no {METRICS} in {str(run_dir)!r}; is it a run directory?")
    fields, rows = _read(path)
    missing = [column for column in required if column not in fields]
    if missing:
        raise RunDirectoryError(f"{str(path)!r} has no column {', '.join(map(repr, missing))}; "
                                "it is not a metrics log metarl wrote")
    if rows and (None in rows[-1] or None in rows[-1].values()):
        rows = rows[:-1]
    numbers = []
    for line, row in enumerate(rows, start=2):
        parsed = {}
        for column, text in row.items():
            try:
                parsed[column] = float(text or "")
            except ValueError:
                raise RunDirectoryError(f"{str(path)!r} line {line}, column {column!r}: "
                                        f"{_short(text)} is not a number") from None
        if not float(parsed["iteration"]).is_integer():
            raise RunDirectoryError(f"{str(path)!r} line {line}: iteration "
                                    f"{_short(row['iteration'])} is not a whole number")
        numbers.append(parsed)
    return numbers


def _short(text: object, limit: int = 40) -> str:
    """``repr(text)``, cut to ``limit`` characters (values in messages stay short)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def truncate_metrics(path: Path, iterations: int) -> None:
    """Keep the rows of the first ``iterations`` iterations (a row logged past the checkpoint
    belongs to an iteration interrupted before it was saved); fewer rows than that mean the
    log does not belong to the checkpoint, which is refused."""
    if not path.exists():
        if iterations:
            raise RunDirectoryError(f"{str(path)!r} is missing, but the checkpoint holds "
                                    f"{iterations} iterations")
        return
    fields, rows = _read(path)
    kept = [row for row in rows if _row_iteration(row) <= iterations]
    if [_row_iteration(row) for row in kept] != list(range(1, iterations + 1)):
        raise RunDirectoryError(
            f"{str(path)!r} does not log iterations 1..{iterations} that the checkpoint "
            "holds; the run directory is inconsistent: choose another --out"
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(kept)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def _row_iteration(row: dict[str, str | None]) -> float:
    """A row's iteration; a row cut short by a crash counts as past every checkpoint."""
    try:
        return float("inf") if None in row.values() else int(row["iteration"] or "")
    except ValueError:
        return float("inf")
