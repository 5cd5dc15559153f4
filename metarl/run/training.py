"""The training loop: a learner's updates one after another, with progress; and the managed
run directory around it (metrics log, checkpoints, resume, TensorBoard)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

import torch

from metarl.config import TrainConfig
from metarl.learn.learner import Learner
from metarl.run.checkpoint import save_checkpoint
from metarl.run.directory import RunDirectory
from metarl.run.factory import build_learner, resolve_device
from metarl.run.resources import check_training_fits
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
from metarl.run.settings import resolve_settings, resumed_settings
from metarl.run.tensorboard import TensorBoardLog

Row = dict[str, float]


def run_iterations(
    learner: Learner, start: int, stop: int, on_row: Callable[[Row], bool | None],
    log: TextIO | None, destination: str = "",
) -> int:
    """Train ``learner`` from iteration ``start`` to ``stop``: each iteration draws
    ``meta_batch_size`` training tasks from the learner's generator and takes one update.
    Each iteration's row (``iteration``, the learner's metrics, ``iteration_seconds``) goes to
    ``on_row``, which may return False to stop early. Returns the iterations done in all.
    Progress goes to ``log`` (a bar on a terminal, else a line per iteration, with the time
    left; nothing with None). Non-finite metrics stop training with a
    :class:`FloatingPointError` before their row is passed on."""
    config = learner.config
    if stop > start:
        check_training_fits(config)
    progress = Progress(log, start, stop)
    span = f"iterations {start + 1}..{stop}" if stop > start else \
        f"no iterations to run ({start} done)"
    progress.say(f"training {config.algo} on {config.family} ({learner.device}), "
                 f"{span}{destination}")
    done = start
    try:
        for iteration in range(start, stop):
            began = time.perf_counter()
            metrics = learner.step(learner.family.sample_tasks(config.meta_batch_size,
                                                               learner.rng))
            seconds = time.perf_counter() - began
            _check_finite(metrics, iteration)
            row = {"iteration": iteration + 1, **metrics, "iteration_seconds": seconds}
            keep_going = on_row(row)
            done = iteration + 1
            progress.update(done, metrics["return_before"], metrics["return_after"])
            if keep_going is False:
                break
    finally:
        progress.close()
    return done


def train(
    settings: TrainConfig | Mapping[str, Any],
    out_dir: str | Path,
    resume: bool = False,
    log: TextIO | None | str = "stdout",
    tensorboard: bool = False,
) -> Learner:
    """Train as ``settings`` say, writing the run directory ``out_dir``.

    A new run saves its untrained learner first (iteration 0; ``iterations=0`` stops there, to
    evaluate it). With ``resume`` an existing run continues from its checkpoint to the
    ``iterations`` setting; the other settings must be the saved ones
    (:func:`metarl.run.settings.resumed_settings`), so ``settings`` may also be just the
    settings given on resuming (a mapping). Every iteration appends a row to ``metrics.csv``
    and then replaces ``checkpoint.pt``; Ctrl-C therefore loses at most the iteration in
    flight, and a resumed run repeats it exactly. The directory is locked while training.
    Progress goes to ``log`` (standard output by default, nothing with None); with
    ``tensorboard``, every metric also goes to TensorBoard event files in ``RUN/tensorboard``.
    """
    stream = sys.stdout if log == "stdout" else cast(TextIO | None, log)
    run_dir = Path(out_dir)
    check_output_dir(run_dir, "--out")
    if isinstance(settings, TrainConfig):  # a new run's plan is checked before any file
        check_training_fits(resolve_settings(settings.to_json()))
    if tensorboard:
        TensorBoardLog.check_available()
    created = not run_dir.exists()
    with locked(run_dir):
        remove_stale_temporaries(run_dir)
        try:
            learner, start = _start(settings, run_dir, resume)
        except BaseException:
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        board = TensorBoardLog(run_dir, first_step=start + 1) if tensorboard else None

        def record(row: Row) -> None:
            append_metrics(run_dir / METRICS, row)
            save_checkpoint(run_dir / CHECKPOINT, learner, int(row["iteration"]), list(row))
            if board is not None:
                board.metrics(row)

        try:
            run_iterations(learner, start, learner.config.iterations, record, stream,
                           f" -> {run_dir}")
        except KeyboardInterrupt:
            if stream is not None:
                done = RunDirectory(run_dir).iteration
                print(f"interrupted; {done} iterations saved in {run_dir}. Continue with: "
                      f"metarl train --out {run_dir} --resume", file=stream, flush=True)
            raise
        finally:
            if board is not None:
                board.close()
    return learner


def _start(
    settings: TrainConfig | Mapping[str, Any], run_dir: Path, resume: bool
) -> tuple[Learner, int]:
    """The learner to train and the iterations it has done: loaded and checked against its
    log (resume), or new and saved as iteration 0. A folder that holds only the
    ``config.json`` of a run killed before its first checkpoint is started afresh."""
    run = RunDirectory(run_dir)
    if not run.has_checkpoint:
        metrics = run_dir / METRICS
        if metrics.exists() and metrics.stat().st_size > 0:
            raise RunDirectoryError(
                f"{str(run_dir)!r} holds a {METRICS} but no {CHECKPOINT}; it is not a "
                "run metarl can continue: choose another --out"
            )
        config = resolve_settings(settings.to_json() if isinstance(settings, TrainConfig)
                                  else settings)
        learner = build_learner(config, resolve_device(config.device))
        write_json(run_dir / CONFIG, config.to_json())
        save_checkpoint(run_dir / CHECKPOINT, learner, 0)
        return learner, 0
    if not resume:
        raise RunDirectoryError(
            f"{str(run_dir)!r} already holds a run; pass --resume to continue it or "
            "choose another --out"
        )
    run.check_belongs()
    changes = settings.to_json() if isinstance(settings, TrainConfig) else settings
    config = resumed_settings(run.config, changes)
    check_metrics_header(run_dir / METRICS, run.state["metrics_columns"])
    learner = run.load(resolve_device(config.device))
    start = run.iteration
    if config.iterations < start:
        raise RunDirectoryError(
            f"--iterations {config.iterations} is below the {start} iterations the run in "
            f"{str(run_dir)!r} has done; a resumed run can only go further"
        )
    learner.config = config
    truncate_metrics(run_dir / METRICS, start)
    write_json(run_dir / CONFIG, config.to_json())
    return learner, start


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
