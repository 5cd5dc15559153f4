"""The meta-learner base class: the two verbs, and the meta-iteration every learner runs.

Two verbs: ``adapt(params, episodes) -> params`` (the inner loop, for a batch of tasks at
once) and ``step(tasks) -> metrics`` (one outer update). Training uses ``step``; evaluation and
the viewer use :meth:`MetaLearner.adaptation`, which by default samples and calls ``adapt``
block after block, and which a learner that adapts otherwise (in a recurrent memory, say)
overrides. So every learner is handled alike.

A meta-iteration (:meth:`MetaLearner.step`) is collect, then update, as stable-baselines3's
``learn -> collect_rollouts -> train``: :meth:`~MetaLearner.collect` samples episodes with
theta_0, takes ``inner_steps`` inner steps (:meth:`~MetaLearner.inner_step`, sampling afresh
before each later step) and samples episodes with the adapted parameters;
:meth:`~MetaLearner.outer_update` then moves theta_0. A learner overrides only what differs.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from metarl.config import TrainConfig, from_dict
from metarl.family.base import TaskFamily
from metarl.learn.adaptation import Adaptation, ParamsAdaptation
from metarl.learn.advantages import advantages
from metarl.learn.surrogates import policy_gradient_step
from metarl.policies.params import Params, detach_params
from metarl.rollout.episodes import EpisodeBatch
from metarl.rollout.sampler import Sampler


@dataclass(frozen=True)
class NoOptions:
    """A learner without options of its own."""


@dataclass
class Episodes:
    """A batch with its (fixed) advantages."""

    batch: EpisodeBatch
    advantages: Tensor

    def subsample(self, fraction: float, generator: torch.Generator) -> Episodes:
        """``fraction`` of each task's episodes, drawn with ``generator``."""
        if fraction >= 1.0:
            return self
        columns = self.batch.sample_columns(fraction, generator)
        return Episodes(self.batch.select_columns(columns), self.advantages[:, columns])


@dataclass
class Rollouts:
    """What one meta-iteration collected for its outer update."""

    tasks: Sequence[Any]
    before: EpisodeBatch
    """Real episodes sampled with theta_0 (their return is the return before adaptation)."""
    inner: list[Episodes]
    """The episodes of each inner step, in order."""
    after: Episodes
    """Real episodes sampled with the adapted parameters."""
    adapted: Params
    """The adapted parameters, per task; with the inner steps' graph back to theta_0 where
    the learner keeps one (see :attr:`MetaLearner.second_order`)."""


class Timer:
    """Seconds per phase of a meta-iteration. Phases nest: time spent in an inner phase is
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


class MetaLearner(abc.ABC):
    """Base class: owns the policy (through its sampler), the run's random state and the
    meta-iteration loop.

    ``sampler`` is built for the learner (:func:`metarl.run.factory.build_learner`), which is
    the only place that picks a sampler backend; the learner never needs to know which.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    """Dataclass of the learner's own options (fields made with :func:`metarl.config.option`)."""
    phases: ClassVar[tuple[str, ...]] = ("sampling", "inner", "outer")
    """The timed phases of a meta-iteration (``<phase>_seconds`` columns of the metrics)."""

    def __init__(self, family: TaskFamily, config: TrainConfig, sampler: Sampler) -> None:
        self.family = family
        self.config = config
        self.options = from_dict(self.Options, config.algo_options, what=f"{self.name} option")
        self.sampler = sampler
        self.policy = sampler.policy
        self.device = sampler.device
        self.rng = np.random.default_rng(config.seed)
        self.env_steps = 0
        """Real environment steps sampled for training so far (:meth:`sample` counts them)."""

    # --- the two verbs -----------------------------------------------------------------------
    def adapt(self, params: Params, episodes: EpisodeBatch, create_graph: bool = False) -> Params:
        """The inner step of every task, from its ``episodes`` (shared or per-task ``params``
        in, per-task out)."""
        return self.inner_step(params, self.with_advantages(episodes), create_graph)

    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One meta-iteration on ``tasks``; returns metrics for the log."""
        timer = Timer(self.phases)
        steps_before = self.env_steps
        rollouts = self.collect(tasks, timer)
        with timer("outer"):
            stats = self.outer_update(rollouts, timer)
        return {
            "return_before": float(rollouts.before.task_returns().mean()),
            "return_after": float(rollouts.after.batch.task_returns().mean()),
            **stats,
            "env_steps": self.env_steps - steps_before,
            **timer.metrics(),
        }

    # --- measuring adaptation -----------------------------------------------------------------
    def adaptation(
        self, tasks: Sequence[Any], adapt_steps: int, episodes: int, seed: int
    ) -> Adaptation:
        """Adapt to every one of ``tasks`` at once: block ``k`` samples ``episodes`` episodes
        per task with the parameters after ``k`` steps, records their mean return and (before
        the last block) adapts on them. Sampling is seeded by ``seed``; the learner's own
        sampling state is left untouched (nor are its training steps counted)."""
        generator_state = self.sampler.generator.get_state()
        self.sampler.generator.manual_seed(seed)
        rng = np.random.default_rng([seed, 0xE7A1])
        params = self.meta_params()
        sets: list[Params] = []
        returns: list[np.ndarray] = []
        try:
            for step in range(adapt_steps + 1):
                batch = self.sampler.sample(tasks, episodes, params, int(rng.integers(2**31)))
                sets.append(params)
                returns.append(batch.task_returns().cpu().numpy().astype(np.float64))
                if step < adapt_steps:
                    params = detach_params(self.adapt(params, batch))
        finally:
            self.sampler.generator.set_state(generator_state)
        return ParamsAdaptation(returns, sets, self.policy, self.device)

    # --- the pieces of a meta-iteration -----------------------------------------------------
    @property
    def second_order(self) -> bool:
        """Whether :meth:`collect` keeps the inner steps' graph for a second-order outer
        update (the adapted parameters stay a function of the live theta_0 either way)."""
        return False

    def collect(self, tasks: Sequence[Any], timer: Timer) -> Rollouts:
        """Sample with theta_0, take the inner steps (sampling again before each later one),
        then sample with the adapted parameters."""
        params = self.policy.parameters_dict()  # live: the outer update may differentiate
        inner: list[Episodes] = []
        for _ in range(self.config.inner_steps):
            with timer("sampling"):
                batch = self.sample(tasks, detach_params(params))
            with timer("inner"):
                episodes = self.with_advantages(batch)
                params = self.inner_step(params, episodes, self.second_order)
            inner.append(episodes)
        after = self.sample_after_adaptation(tasks, params, timer)
        return Rollouts(tasks, inner[0].batch, inner, after, params)

    def inner_step(self, params: Params, episodes: Episodes, create_graph: bool) -> Params:
        """One policy-gradient step per task; differentiable through the step when
        ``create_graph`` (second-order meta-gradients)."""
        return policy_gradient_step(
            self.policy, params, episodes.batch, episodes.advantages, self.config.inner_lr,
            create_graph,
        )

    def sample_after_adaptation(
        self, tasks: Sequence[Any], params: Params, timer: Timer
    ) -> Episodes:
        """Fresh episodes with the adapted ``params``, with their advantages."""
        with timer("sampling"):
            batch = self.sample(tasks, detach_params(params))
        return self.with_advantages(batch)

    @abc.abstractmethod
    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        """Move theta_0 from the collected ``rollouts``; returns the update's metrics. Time
        spent in a phase of its own (``with timer("model"): ...``) is not counted as outer."""

    # --- helpers for subclasses ---------------------------------------------------------------
    def with_advantages(self, batch: EpisodeBatch) -> Episodes:
        return Episodes(batch, advantages(batch, self.config.gamma, self.config.gae_lambda))

    def meta_params(self) -> Params:
        """theta_0, detached (what sampling before adaptation uses)."""
        return detach_params(self.policy.parameters_dict())

    def sample(
        self, tasks: Sequence[Any], params: Params, episodes_per_task: int | None = None
    ) -> EpisodeBatch:
        """``episodes_per_task`` (default: the config's) episodes on each task; the env seed
        comes from the run's rng."""
        seed = int(self.rng.integers(2**31))
        episodes = self.config.episodes_per_task if episodes_per_task is None else episodes_per_task
        batch = self.sampler.sample(tasks, episodes, params, seed)
        self.env_steps += int(batch.mask.sum())
        return batch

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs; only tensors, numbers, strings and containers."""
        return {
            "policy": self.policy.state_dict(),
            "rng": self.rng.bit_generator.state,
            "generator": self.sampler.generator.get_state(),
            "env_steps": self.env_steps,
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.rng.bit_generator.state = state["rng"]
        self.sampler.generator.set_state(state["generator"])
        self.env_steps = int(state.get("env_steps", 0))
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """Learner-specific state (optimisers, models) for :meth:`state_dict`."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`extra_state` saved."""
