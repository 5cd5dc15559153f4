"""Checkpoints: weights-only files that rebuild a learner.

A checkpoint (a run's ``checkpoint.pt``, or a file ``metarl.MetaLearner.save`` wrote) holds
the iteration, the resolved config and the learner's state (tensors, numbers, strings and
containers only). It loads with ``weights_only=True``, so a file from elsewhere cannot execute
code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from metarl.config import ConfigError, TrainConfig, from_dict
from metarl.learn.learner import Learner
from metarl.run.factory import build_learner
from metarl.run.rundir import RunDirectoryError, atomic_write
from metarl.run.settings import resolve_settings

FORMAT = "metarl-checkpoint"
VERSION = 1


def save_checkpoint(
    path: Path, learner: Learner, iteration: int, metrics_columns: list[str] | None = None
) -> None:
    """Replace the checkpoint file ``path`` atomically with the learner after ``iteration``;
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
    atomic_write(Path(path), lambda handle: handle.write(buffer.getvalue()), binary=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint file's contents, checked against its schema; loads tensors and plain
    data only, and never imports anything the file names."""
    path = Path(path)
    if not path.is_file():
        raise RunDirectoryError(f"no checkpoint file {str(path)!r}")
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
    """The training config of a checkpoint read with :func:`read_checkpoint`, every setting
    resolved (a checkpoint saved before learner options were recorded in full gets today's
    defaults for the ones it lacks)."""
    return resolve_settings(from_dict(TrainConfig, state["config"],
                                      what="checkpoint config").to_json())


def learner_from_state(state: dict[str, Any], device: torch.device, where: str) -> Learner:
    """Rebuild the learner a checkpoint ``state`` holds (read from ``where``, named in
    errors); the family and learner are looked up by their registered names only."""
    config = saved_config(state)
    try:
        learner = build_learner(config, device)
    except ConfigError as error:
        raise RunDirectoryError(f"the run in {where!r} cannot be rebuilt: {error}") from None
    try:
        learner.load_state_dict(state["learner"])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        reason = " ".join(str(error).split())[:160]
        raise RunDirectoryError(
            f"checkpoint in {where!r} does not fit {config.algo} on {config.family}: {reason}"
        ) from None
    bad = sorted(non_finite_tensors(learner.state_dict()))
    if bad:
        raise RunDirectoryError(f"checkpoint in {where!r} holds non-finite weights "
                                f"({', '.join(bad[:5])}); resume from an earlier copy")
    return learner


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """The names of the floating-point tensors in a (nested) state that hold NaN or inf."""
    if isinstance(state, torch.Tensor):
        finite = not state.is_floating_point() or bool(torch.isfinite(state).all())
        return [] if finite else [prefix or "tensor"]
    items: list[tuple[Any, Any]]
    if isinstance(state, dict):
        items = list(state.items())
    elif isinstance(state, list | tuple):
        items = list(enumerate(state))
    else:
        return []
    return [name for key, value in items
            for name in non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))]
