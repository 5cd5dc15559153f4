"""Run directories: atomic writes, weights-only checkpoints, and the learner they rebuild.

A run directory holds ``config.json``, ``metrics.csv`` and ``checkpoint.pt`` (and later
evaluation results). Files are written to a temporary name and renamed, so an interrupted
write never leaves a half-written file; checkpoints load with ``weights_only=True``, so a run
directory from elsewhere cannot execute code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from metarl.config import ConfigError, TrainConfig, from_dict
from metarl.learner import MetaLearner
from metarl.registry import get_family, get_learner

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"
FORMAT = "metarl-checkpoint"
VERSION = 1


class RunDirectoryError(ValueError):
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def build_learner(config: TrainConfig, device: torch.device) -> MetaLearner:
    """The learner a config describes (family and algorithm looked up in the registries)."""
    try:
        family = get_family(config.family)
        learner_class = get_learner(config.algo)
    except KeyError as error:
        raise ConfigError(error.args[0]) from None
    return learner_class(family, config, device)


def save_checkpoint(run_dir: Path, learner: MetaLearner, iteration: int) -> None:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "iteration": iteration,
        "config": learner.config.to_json(),
        "learner": learner.state_dict(),
    }
    atomic_write(run_dir / CHECKPOINT, lambda handle: torch.save(state, handle), binary=True)


def read_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The checkpoint's contents, checked; loads tensors and plain data only."""
    path = Path(run_dir) / CHECKPOINT
    if not Path(run_dir).is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} does not exist")
    if not path.exists():
        raise RunDirectoryError(f"no checkpoint in {str(run_dir)!r} (expected {CHECKPOINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunDirectoryError(f"checkpoint {str(path)!r} is corrupt or unsafe: {error}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunDirectoryError(f"{str(path)!r} is not a metarl checkpoint")
    if state.get("version") != VERSION:
        raise RunDirectoryError(
            f"checkpoint {str(path)!r} has version {state.get('version')}, expected {VERSION}"
        )
    return state


def load_learner(run_dir: Path, device: torch.device) -> tuple[MetaLearner, int]:
    """Rebuild the learner saved in ``run_dir``; returns it and the iterations completed."""
    state = read_checkpoint(run_dir)
    config = from_dict(TrainConfig, state["config"])
    learner = build_learner(config, device)
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunDirectoryError(
            f"checkpoint in {str(run_dir)!r} does not fit {config.algo} on {config.family}: "
            f"{error}"
        ) from None
    return learner, int(state["iteration"])
