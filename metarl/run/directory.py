"""A run directory as one object, read once: its checkpoint, settings, metrics and cost."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from metarl import registry
from metarl.config import TrainConfig, load_json, shown
from metarl.learn.learner import Learner
from metarl.run.checkpoint import learner_from_state, read_checkpoint, saved_config
from metarl.run.rundir import CHECKPOINT, CONFIG, METRICS, RunDirectoryError, read_metrics
from metarl.run.settings import CHANGEABLE_ON_RESUME, flat_settings, resolve_settings


class RunDirectory:
    """The run directory ``path`` (written by ``metarl train`` or ``metarl.train``). The
    checkpoint is read (and checked) once, on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    @functools.cached_property
    def state(self) -> dict[str, Any]:
        """The checkpoint's contents (see :func:`metarl.run.checkpoint.read_checkpoint`)."""
        if not self.path.is_dir():
            raise RunDirectoryError(f"run directory {str(self.path)!r} does not exist")
        if not self.checkpoint_path.is_file():
            raise RunDirectoryError(f"no checkpoint in {str(self.path)!r} (expected "
                                    f"{CHECKPOINT})")
        return read_checkpoint(self.checkpoint_path)

    @property
    def config(self) -> TrainConfig:
        """The run's settings, every one resolved."""
        return saved_config(self.state)

    @property
    def iteration(self) -> int:
        """The iterations the checkpoint holds."""
        return int(self.state["iteration"])

    def check_belongs(self) -> None:
        """Refuse a checkpoint whose settings are not the ones the directory's
        ``config.json`` records (a checkpoint copied in from another run): resuming it would
        mix two runs' logs in one folder. Iterations and device may differ."""
        path = self.path / CONFIG
        if not path.exists():
            return
        recorded = flat_settings(resolve_settings(load_json(path)))
        saved = flat_settings(self.config)
        differ = [key for key in saved if key not in CHANGEABLE_ON_RESUME
                  and saved[key] != recorded.get(key)]
        if differ:
            key = differ[0]
            raise RunDirectoryError(
                f"the checkpoint in {str(self.path)!r} has {key}={shown(saved[key])} but the "
                f"run's {CONFIG} has {shown(recorded.get(key))}: it does not belong to this run "
                "directory; put it back or start a new run with another --out")

    def load(self, device: torch.device) -> Learner:
        """The learner the checkpoint holds, on ``device``."""
        return learner_from_state(self.state, device, str(self.path))

    def metrics(self) -> list[dict[str, float]]:
        """The complete rows of ``metrics.csv``, as numbers (checked)."""
        return read_metrics(self.path, required=("iteration", "iteration_seconds"))

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def training_cost(self) -> tuple[int, float, bool]:
        """The real env steps the run sampled in training, the seconds its iterations took,
        and whether the steps were counted, from its ``metrics.csv``; for a run logged before
        steps were counted the steps are a bound: every episode to the horizon, ``inner_steps
        + 1`` batches of ``meta_batch_size x episodes_per_task`` per iteration."""
        rows = self.metrics()
        seconds = sum(row["iteration_seconds"] for row in rows)
        if rows and "env_steps" in rows[0]:
            return sum(int(row["env_steps"]) for row in rows), seconds, True
        config = self.config
        horizon = registry.get_family(config.family).max_episode_steps
        episodes = config.meta_batch_size * config.episodes_per_task * (config.inner_steps + 1)
        return len(rows) * episodes * horizon, seconds, False
