"""The training loop: meta-iterations, the metrics log, checkpoints, resume, progress."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

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
    check_metrics_header,
    check_output_dir,
    locked,
    remove_stale_temporaries,
    truncate_metrics,
    write_json,
)
from metarl.run.tensorboard import TensorBoardLog

CHANGEABLE_ON_RESUME = ("iterations", "device")
"""The settings a resumed run may change (raising its target, moving it to another device)."""


def resume_config(run_dir: str | Path, changes: dict[str, Any]) -> TrainConfig:
    """The saved config of the run in ``run_dir`` with ``changes`` (the flags given with
    ``--resume``) applied; :func:`train` refuses changes other than raising the target or
    moving the device."""
    saved = saved_config(read_checkpoint(Path(run_dir))).to_json()
    options = {**saved["algo_options"], **changes.get("algo_options", {})}
    return from_dict(TrainConfig, {**saved, **changes, "algo_options": options})


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    log: TextIO | None | str = "stdout",
    tensorboard: bool = False,
) -> MetaLearner:
    """Meta-train as ``config`` says, writing the run directory ``out_dir``.

    A new run saves its untrained learner first (iteration 0; ``iterations=0`` stops there, to
    evaluate it). With ``resume`` an existing run continues from its checkpoint to
    ``config.iterations``; ``config`` must otherwise be the saved one (see
    :func:`resume_config`). Every iteration appends a row to ``metrics.csv`` and then replaces
    ``checkpoint.pt``; Ctrl-C therefore loses at most the iteration in flight, and a resumed
    run repeats it exactly. The directory is locked while training. Progress goes to ``log``
    (standard output by default, nothing with None): a bar on a terminal, else a line per
    iteration, with the time left; with ``tensorboard``, every metric also goes to
    TensorBoard event files in ``RUN/tensorboard``.
    """
    log = sys.stdout if log == "stdout" else log
    run_dir = Path(out_dir)
    check_output_dir(run_dir, "--out")
    device = resolve_device(config.device)
    if tensorboard:
        TensorBoardLog.check_available()
    created = not run_dir.exists()
    with locked(run_dir):
        remove_stale_temporaries(run_dir)
        try:
            learner, start = _start(config, run_dir, resume, device)
        except BaseException:
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        board = TensorBoardLog(run_dir, first_step=start + 1) if tensorboard else None
        try:
            _loop(learner, run_dir, start, log, board)
        finally:
            if board is not None:
                board.close()
    return learner


def _start(
    config: TrainConfig, run_dir: Path, resume: bool, device: torch.device
) -> tuple[MetaLearner, int]:
    """The learner to train and the iterations it has done: loaded and checked against its
    log (resume), or new and saved as iteration 0."""
    if not (run_dir / CHECKPOINT).exists():
        for leftover in (METRICS, CONFIG):
            if (run_dir / leftover).exists():
                raise RunDirectoryError(
                    f"{str(run_dir)!r} holds a {leftover} but no {CHECKPOINT}; it is not a "
                    "run metarl can continue: choose another --out"
                )
        learner = build_learner(config, device)
        write_json(run_dir / CONFIG, config.to_json())
        save_checkpoint(run_dir, learner, 0)
        return learner, 0
    if not resume:
        raise RunDirectoryError(
            f"{str(run_dir)!r} already holds a run; pass --resume to continue it or "
            "choose another --out"
        )
    saved = saved_config(read_checkpoint(run_dir))
    changed = [key for key, value in config.to_json().items()
               if key not in CHANGEABLE_ON_RESUME and value != saved.to_json()[key]]
    if changed:
        flags = ", ".join(f"--{key.replace('_', '-')} {config.to_json()[key]!r} (the run has "
                          f"{saved.to_json()[key]!r})" for key in changed)
        raise RunDirectoryError(f"a resumed run keeps its settings, but {flags}; drop the "
                                "flag or start a new run with another --out")
    state = read_checkpoint(run_dir)
    check_metrics_header(run_dir / METRICS, state["metrics_columns"])
    learner, start = load_learner(run_dir, device)
    if config.iterations < start:
        raise RunDirectoryError(
            f"--iterations {config.iterations} is below the {start} iterations the run in "
            f"{str(run_dir)!r} has done; a resumed run can only go further"
        )
    learner.config = from_dict(TrainConfig, {**saved.to_json(), "iterations": config.iterations,
                                             "device": config.device})
    truncate_metrics(run_dir / METRICS, start)
    write_json(run_dir / CONFIG, learner.config.to_json())
    return learner, start


def _loop(
    learner: MetaLearner, run_dir: Path, start: int, log: TextIO | None,
    board: TensorBoardLog | None,
) -> None:
    config = learner.config
    progress = Progress(log, start, config.iterations)
    progress.say(f"training {config.algo} on {config.family} ({learner.device}), iterations "
                 f"{start + 1}..{config.iterations} -> {run_dir}")
    for iteration in range(start, config.iterations):
        try:
            began = time.perf_counter()
            metrics = learner.step(learner.family.sample_tasks(config.meta_batch_size, learner.rng))
            seconds = time.perf_counter() - began
        except KeyboardInterrupt:
            progress.close()
            progress.say(f"interrupted; {iteration} iterations saved in {run_dir}. "
                         f"Continue with: metarl train --out {run_dir} --resume")
            raise
        _check_finite(metrics, iteration)
        row = {"iteration": iteration + 1, **metrics, "iteration_seconds": seconds}
        append_metrics(run_dir / METRICS, row)
        save_checkpoint(run_dir, learner, iteration + 1, list(row))
        if board is not None:
            board.metrics(row)
        progress.update(iteration + 1, metrics["return_before"], metrics["return_after"])
    progress.close()


class Progress:
    """Training progress: a bar with the time left on a terminal, otherwise one line per
    iteration (with the time left), to ``log``; nothing when ``log`` is None."""

    def __init__(self, log: TextIO | None, start: int, total: int) -> None:
        self.log = log
        self.start, self.total = start, total
        self.began = time.perf_counter()
        self.bar: Any = None
        if log is not None and log.isatty() and total > start:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, file=log, unit="it", desc="training")

    def say(self, message: str) -> None:
        if self.log is not None:
            print(message, file=self.log, flush=True)

    def update(self, done: int, before: float, after: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(before=f"{before:.2f}", after=f"{after:.2f}")
            return
        elapsed = time.perf_counter() - self.began
        left = elapsed / (done - self.start) * (self.total - done)
        self.say(f"[{done}/{self.total}] return before {before:8.2f}  after {after:8.2f}  "
                 f"({elapsed / (done - self.start):.2f} s/it, {_duration(left)} left)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _check_finite(metrics: dict[str, float], iteration: int) -> None:
    bad = [key for key, value in metrics.items() if not torch.isfinite(torch.tensor(value))]
    if bad:
        raise FloatingPointError(
            f"non-finite {', '.join(bad)} at iteration {iteration + 1}; the last checkpoint "
            "holds the previous iteration (try a smaller --inner-lr or max KL)"
        )
