"""The learner protocol: what every learner implements, and all that training, evaluation,
``compare``, ``watch``, ``sweep`` and ``bench`` use of it.

A learner is built from ``(family, config, device)`` (:class:`Learner`'s constructor; the run
layer builds it inside a seeded random stream) and builds only the parts it uses. It has:

- :meth:`Learner.step`: one training update on a batch of training tasks, returning metrics;
- :meth:`Learner.adaptation`: adapt to held-out tasks in blocks of episodes. Block ``k`` is
  the ``episodes`` episodes played after ``k`` adaptation steps: a gradient learner plays it
  with the parameters after ``k`` inner steps, a learner that adapts in memory as episodes
  ``k * episodes .. (k + 1) * episodes - 1`` of one trial. It returns an
  :class:`~metarl.learn.adaptation.Adaptation`: every block's return on every task, and per
  task an actor whose column ``k`` acts as after ``k`` steps;
- :meth:`Learner.state_dict` / :meth:`Learner.load_state_dict`: its state for checkpoints
  (tensors, numbers, strings and containers only).

Gradient meta-learners share :class:`metarl.learn.gradient.GradientLearner`; learners that
adapt in memory share the trial stepper (:mod:`metarl.rollout.trials`) and
:mod:`metarl.learn.memory`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.config import TrainConfig, from_dict
from metarl.family.base import TaskFamily
from metarl.learn.adaptation import Adaptation, BlockEpisodes


@dataclass(frozen=True)
class NoOptions:
    """A learner without options of its own."""


class Timer:
    """Seconds per phase of a training update. Phases nest: time spent in an inner phase is
    not counted in the phase around it."""

    def __init__(self, phases: Sequence[str]) -> None:
        self.seconds = dict.fromkeys(phases, 0.0)
        self._open: list[list[Any]] = []  # [phase, start] of the phases entered, innermost last

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._open:
            self._charge(now)
        self._open.append([phase, now])
        try:
            yield
        finally:
            self._charge(time.perf_counter())
            self._open.pop()
            if self._open:
                self._open[-1][1] = time.perf_counter()

    def _charge(self, now: float) -> None:
        phase, start = self._open[-1]
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - start
        self._open[-1][1] = now

    def metrics(self) -> dict[str, float]:
        return {f"{phase}_seconds": seconds for phase, seconds in self.seconds.items()}


class Learner(abc.ABC):
    """Base of every learner (see the module docstring).

    Subclasses set ``Options`` (a frozen dataclass of :func:`metarl.config.option` fields:
    they become ``metarl train`` flags and ``metarl.make`` keywords) and implement the four
    methods. The base holds what every learner has: the family, the resolved config, the
    learner's options, the device, the run's random generator (the training loop draws each
    update's tasks from it) and the count of real environment steps sampled for training.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    """Dataclass of the learner's own options (fields made with :func:`metarl.config.option`)."""
    phases: ClassVar[tuple[str, ...]] = ()
    """The timed phases of an update (``<phase>_seconds`` columns of the metrics)."""
    trainable: ClassVar[bool] = True
    """False for learners with nothing to learn before the test tasks (``random``,
    ``ppo-scratch``): they run with ``iterations = 0``."""
    defaults: ClassVar[Mapping[str, Any]] = {}
    """The learner's own defaults for shared training settings (e.g. ``meta_batch_size``),
    used where the settings given do not set them."""
    baseline: ClassVar[bool] = False
    """A reference that meta-learners are measured against (``compare``'s verdict names every
    step where one wins)."""

    @classmethod
    def steps_per_iteration(cls, config: TrainConfig) -> int | None:
        """The real env steps one training update samples, where that is fixed: ``compare``
        then trains the learner to an env-step budget rather than a number of iterations.
        None (the default) otherwise."""
        return None

    def __init__(self, family: TaskFamily, config: TrainConfig, device: torch.device) -> None:
        self.family = family
        self.config = config
        self.device = device
        self.options: Any = from_dict(self.Options, config.algo_options,
                                      what=f"{self.name} option")
        self.rng = np.random.default_rng(config.seed)
        self.env_steps = 0
        """Real environment steps sampled for training so far."""

    @abc.abstractmethod
    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One training update on ``tasks``; returns metrics for the log, at least
        ``return_before`` and ``return_after`` (the return of the update's first and last
        block of episodes) and ``env_steps`` (real steps it sampled)."""

    @abc.abstractmethod
    def adaptation(
        self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes, seed: int
    ) -> Adaptation:
        """Adapt to every one of ``tasks`` at once: ``adapt_steps + 1`` blocks of ``episodes``
        episodes per task (one number, or one per block: :func:`block_sizes`), seeded by
        ``seed``; the learner's training state (weights, random state, step count) is left
        untouched."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; only tensors, numbers, strings and containers."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
