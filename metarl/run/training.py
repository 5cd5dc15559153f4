"""The training loop: meta-iterations, the metrics log, checkpoints, resume."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import torch

from metarl.config import TrainConfig, from_dict
from metarl.learn.learner import MetaLearner
from metarl.run.checkpoint import load_learner, read_checkpoint, save_checkpoint, saved_config
from metarl.run.factory import build_learner, resolve_device
from metarl.run.rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    RunDirectoryError,
    append_metrics,
    truncate_metrics,
    write_json,
)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: TextIO | None | str = "stdout",
) -> MetaLearner:
    """Meta-train as ``config`` says, writing the run directory ``out_dir``.

    With ``resume`` an existing run continues from its checkpoint (its saved config wins,
    except ``iterations``, which may be raised). Every iteration appends a row to
    ``metrics.csv`` and then replaces ``checkpoint.pt``; Ctrl-C therefore loses at most the
    iteration in flight, and a resumed run repeats it exactly. Progress goes to ``log``
    (standard output by default, nothing with None).
    """
    log = sys.stdout if log == "stdout" else log
    run_dir = Path(out_dir)
    device = resolve_device(config.device)
    if (run_dir / CHECKPOINT).exists():
        if not resume:
            raise RunDirectoryError(
                f"{str(run_dir)!r} already holds a run; pass --resume to continue it or "
                "choose another --out"
            )
        saved = saved_config(read_checkpoint(run_dir))
        config = from_dict(TrainConfig, {**saved.to_json(), "iterations": config.iterations,
                                         "device": config.device})
        learner, start = load_learner(run_dir, device)
        learner.config = config
        truncate_metrics(run_dir / METRICS, start)
    else:
        learner, start = build_learner(config, device), 0
    write_json(run_dir / CONFIG, config.to_json())
    _say(log, f"training {config.algo} on {config.family} ({device}), iterations "
              f"{start + 1}..{config.iterations} -> {run_dir}")
    for iteration in range(start, config.iterations):
        try:
            began = time.perf_counter()
            metrics = learner.step(learner.family.sample_tasks(config.meta_batch_size, learner.rng))
            seconds = time.perf_counter() - began
        except KeyboardInterrupt:
            _say(log, f"interrupted; {iteration} iterations saved in {run_dir}. "
                      f"Continue with: metarl train --out {run_dir} --resume")
            raise
        _check_finite(metrics, iteration)
        row = {"iteration": iteration + 1, **metrics, "iteration_seconds": seconds}
        append_metrics(run_dir / METRICS, row)
        save_checkpoint(run_dir, learner, iteration + 1)
        _say(log, f"[{iteration + 1}/{config.iterations}] return before "
                  f"{metrics['return_before']:8.2f}  after {metrics['return_after']:8.2f}  "
                  f"({seconds:.2f} s)")
    return learner


def _check_finite(metrics: dict[str, float], iteration: int) -> None:
    bad = [key for key, value in metrics.items() if not torch.isfinite(torch.tensor(value))]
    if bad:
        raise FloatingPointError(
            f"non-finite {', '.join(bad)} at iteration {iteration + 1}; the last checkpoint "
            "holds the previous iteration (try a smaller --inner-lr or max KL)"
        )


def _say(log: TextIO | None, message: str) -> None:
    if log is not None:
        print(message, file=log, flush=True)
