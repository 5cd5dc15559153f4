"""Checkpoints: weights-only files that rebuild a learner.

``checkpoint.pt`` holds the iteration, the config and the learner's state (tensors, numbers,
strings and containers only). It loads with ``weights_only=True``, so a run directory from
elsewhere cannot execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from metarl.config import TrainConfig, from_dict
from metarl.learn.learner import MetaLearner
from metarl.run.factory import build_learner
from metarl.run.rundir import CHECKPOINT, RunDirectoryError, atomic_write

FORMAT = "metarl-checkpoint"
VERSION = 1


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


def saved_config(state: dict[str, Any]) -> TrainConfig:
    """The training config of a checkpoint read with :func:`read_checkpoint`."""
    return from_dict(TrainConfig, state["config"])


def load_learner(run_dir: Path, device: torch.device) -> tuple[MetaLearner, int]:
    """Rebuild the learner saved in ``run_dir``; returns it and the iterations completed."""
    state = read_checkpoint(run_dir)
    config = saved_config(state)
    learner = build_learner(config, device)
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunDirectoryError(
            f"checkpoint in {str(run_dir)!r} does not fit {config.algo} on {config.family}: "
            f"{error}"
        ) from None
    return learner, int(state["iteration"])
