"""Checkpoints: weights-only files that rebuild a learner.

``checkpoint.pt`` holds the iteration, the config and the learner's state (tensors, numbers,
strings and containers only). It loads with ``weights_only=True``, so a run directory from
elsewhere cannot execute code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from metarl.config import ConfigError, TrainConfig, from_dict
from metarl.learn.learner import MetaLearner
from metarl.run.factory import build_learner
from metarl.run.rundir import CHECKPOINT, RunDirectoryError, atomic_write

FORMAT = "metarl-checkpoint"
VERSION = 1


def save_checkpoint(
    run_dir: Path, learner: MetaLearner, iteration: int, metrics_columns: list[str] | None = None
) -> None:
    """Replace ``run_dir/checkpoint.pt`` atomically with the learner after ``iteration``;
    ``metrics_columns`` (the header of the run's metrics log) let a resume check the log."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "iteration": iteration,
        "config": learner.config.to_json(),
        "learner": learner.state_dict(),
        "metrics_columns": list(metrics_columns or []),
    }
    buffer = io.BytesIO()  # serialised first: a full disk then fails as an OSError, by name
    torch.save(state, buffer)
    atomic_write(run_dir / CHECKPOINT, lambda handle: handle.write(buffer.getvalue()),
                 binary=True)


def read_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The checkpoint's contents, checked against its schema; loads tensors and plain data
    only, and never imports anything the file names."""
    path = Path(run_dir) / CHECKPOINT
    if not Path(run_dir).is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise RunDirectoryError(f"no checkpoint in {str(run_dir)!r} (expected {CHECKPOINT})")
    if path.stat().st_size == 0:
        raise RunDirectoryError(f"checkpoint {str(path)!r} is empty (0 bytes); the run cannot "
                                "be loaded")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # a class or function the file asks to import
            raise RunDirectoryError(
                f"checkpoint {str(path)!r} holds objects other than tensors and plain data; "
                "metarl loads weights only and will not open it"
            ) from None
        raise RunDirectoryError(f"checkpoint {str(path)!r} is truncated or corrupt (not a "
                                "checkpoint file)") from None
    except Exception as error:
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise RunDirectoryError(f"checkpoint {str(path)!r} is truncated or corrupt ({reason})") \
            from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunDirectoryError(f"{str(path)!r} is not a metarl checkpoint")
    if state.get("version") != VERSION:
        raise RunDirectoryError(
            f"checkpoint {str(path)!r} has version {state.get('version')!r}, expected {VERSION}"
        )
    iteration = state.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise RunDirectoryError(f"checkpoint {str(path)!r} has iteration {iteration!r}, not a "
                                "whole number >= 0")
    for key in ("config", "learner"):
        if not isinstance(state.get(key), dict):
            raise RunDirectoryError(f"checkpoint {str(path)!r} has no {key!r} section")
    columns = state.setdefault("metrics_columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise RunDirectoryError(f"checkpoint {str(path)!r} has malformed metrics_columns")
    try:
        state["config"] = saved_config(state).to_json()
    except ConfigError as error:
        raise RunDirectoryError(f"checkpoint {str(path)!r} has a bad config: {error}") from None
    return state


def saved_config(state: dict[str, Any]) -> TrainConfig:
    """The training config of a checkpoint read with :func:`read_checkpoint`."""
    return from_dict(TrainConfig, state["config"], what="checkpoint config")


def load_learner(run_dir: Path, device: torch.device) -> tuple[MetaLearner, int]:
    """Rebuild the learner saved in ``run_dir``; returns it and the iterations completed.

    The family and learner are looked up by their registered names only."""
    state = read_checkpoint(run_dir)
    config = saved_config(state)
    try:
        learner = build_learner(config, device)
    except ConfigError as error:
        raise RunDirectoryError(f"the run in {str(run_dir)!r} cannot be rebuilt: {error}") \
            from None
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        reason = " ".join(str(error).split())[:160]
        raise RunDirectoryError(
            f"checkpoint in {str(run_dir)!r} does not fit {config.algo} on {config.family}: "
            f"{reason}"
        ) from None
    bad = [name for name, value in learner.policy.state_dict().items()
           if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise RunDirectoryError(f"checkpoint in {str(run_dir)!r} holds non-finite policy "
                                f"weights ({', '.join(bad)}); resume from an earlier copy")
    return learner, int(state["iteration"])
