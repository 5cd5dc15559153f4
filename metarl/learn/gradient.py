"""Gradient meta-learners: the meta-iteration MAML, MEML and MBML share.

A gradient learner owns a feed-forward policy with explicit parameters and its sampler. Its
verb ``adapt_params(params, episodes) -> params`` is the inner loop, for a batch of tasks at
once; evaluation samples a block with the current parameters, records it, adapts on it and
repeats (:meth:`GradientLearner.adaptation`).

A meta-iteration (:meth:`GradientLearner.step`) is collect, then update, as
stable-baselines3's ``learn -> collect_rollouts -> train``: :meth:`~GradientLearner.collect`
samples episodes with theta_0, takes ``inner_steps`` inner steps
(:meth:`~GradientLearner.inner_step`, sampling afresh before each later step) and samples
episodes with the adapted parameters; :meth:`~GradientLearner.outer_update` then moves theta_0.
A learner sets its inner step and its outer update, each built from the shared pieces of
:mod:`metarl.learn.surrogates` and :mod:`metarl.learn.outer`, and overrides only what differs.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from metarl.config import TrainConfig
from metarl.family.base import TaskFamily
from metarl.learn.adaptation import BlockEpisodes, ParamsAdaptation, block_sizes
from metarl.learn.advantages import advantages
from metarl.learn.learner import Learner, Timer
from metarl.learn.surrogates import policy_gradient_step
from metarl.policies.mlp import make_policy
from metarl.policies.params import Params, detach_params
from metarl.rollout.backends import make_sampler
from metarl.rollout.episodes import EpisodeBatch


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
    the learner keeps one (see :attr:`GradientLearner.second_order`)."""


def success_metrics(before: EpisodeBatch, after: EpisodeBatch) -> dict[str, float]:
    """``success_before`` and ``success_after`` (the share of episodes that succeeded) where
    the family defines success; nothing otherwise."""
    if before.successes is None or after.successes is None:
        return {}
    return {"success_before": float(before.successes.mean()),
            "success_after": float(after.successes.mean())}


class GradientLearner(Learner):
    """Base of the gradient meta-learners: the policy, its sampler and the meta-iteration."""

    phases: ClassVar[tuple[str, ...]] = ("sampling", "inner", "outer")

    def __init__(self, family: TaskFamily, config: TrainConfig, device: torch.device) -> None:
        super().__init__(family, config, device)
        self.policy = make_policy(
            family.observation_space, family.action_space, config.hidden_sizes,
            config.activation, config.init_std, config.init_output_scale,
        ).to(device)
        self.sampler = make_sampler(family, self.policy, device, config.seed, config.backend,
                                    config.num_workers, config.ray_address)

    # --- the inner loop and the meta-iteration --------------------------------------------------
    def adapt_params(
        self, params: Params, episodes: EpisodeBatch, create_graph: bool = False
    ) -> Params:
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
            **success_metrics(rollouts.before, rollouts.after.batch),
            **stats,
            "env_steps": self.env_steps - steps_before,
            **timer.metrics(),
        }

    def adaptation(
        self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes, seed: int
    ) -> ParamsAdaptation:
        """Block ``k`` samples ``episodes`` episodes per task with the parameters after ``k``
        steps, records their mean return and (before the last block) adapts on them.
        Sampling is seeded by ``seed``; the learner's own sampling state is left untouched (nor
        are its training steps counted)."""
        generator_state = self.sampler.generator.get_state()
        self.sampler.generator.manual_seed(seed)
        rng = np.random.default_rng([seed, 0xE7A1])
        params = self.meta_params()
        sets: list[Params] = []
        returns: list[np.ndarray] = []
        successes: list[np.ndarray] = []
        try:
            for step, size in enumerate(block_sizes(adapt_steps, episodes)):
                batch = self.sampler.sample(tasks, size, params, int(rng.integers(2**31)))
                sets.append(params)
                returns.append(batch.task_returns().cpu().numpy().astype(np.float64))
                task_successes = batch.task_successes()
                if task_successes is not None:
                    successes.append(task_successes.cpu().numpy().astype(np.float64))
                if step < adapt_steps:
                    params = detach_params(self.adapt_params(params, batch))
        finally:
            self.sampler.generator.set_state(generator_state)
        return ParamsAdaptation(returns, sets, self.policy, self.device,
                                successes=successes or None)

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

    def replay(self, inner: list[Episodes], create_graph: bool = False) -> Params:
        """theta_t from the live theta_0, repeating the inner steps on their (fixed)
        episodes: what a trial theta_0 of an outer step adapts to."""
        params = self.policy.parameters_dict()
        for episodes in inner:
            params = self.inner_step(params, episodes, create_graph)
        return params

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

    # --- helpers --------------------------------------------------------------------------------
    def with_advantages(self, batch: EpisodeBatch) -> Episodes:
        return Episodes(batch, advantages(batch, self.config.gamma, self.config.gae_lambda))

    def meta_params(self) -> Params:
        """theta_0, detached (what sampling before adaptation uses)."""
        return detach_params(self.policy.parameters_dict())

    def sample(
        self, tasks: Sequence[Any], params: Params, episodes_per_task: int | None = None
    ) -> EpisodeBatch:
        """``episodes_per_task`` (default: the config's) episodes on each task; the env seed
        comes from the run's rng; the steps count as training steps."""
        seed = int(self.rng.integers(2**31))
        episodes = self.config.episodes_per_task if episodes_per_task is None else episodes_per_task
        batch = self.sampler.sample(tasks, episodes, params, seed)
        self.env_steps += int(batch.mask.sum())
        return batch

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
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
