"""Learners that adapt in memory (RL^2, VariBAD): their evaluation blocks and their actors.

Such a learner is a :class:`TrialPolicy`: a policy over trial observations
(:mod:`metarl.rollout.trials`) with a recurrent memory that runs on across the episodes of a
trial. Block ``k`` of its adaptation to a task is episodes ``k*E .. (k+1)*E - 1`` of one trial
of ``(K + 1) * E`` episodes (:func:`trial_adaptation`, every task stepped at once through the
trial stepper), so its blocks line up with a gradient learner's and both get the same
real-episode budget. Its actor (:class:`MemoryActor`) plays column ``k`` from the memory the
trial had at the start of block ``k``. :class:`PriorPolicy` plays a learner with its memory
held at a trial's start: what it does before any evidence of the task.

A memory is a tuple of tensors whose dimension 1 is the column (an LSTM's ``(h, c)`` of shape
``[layers, n, units]``, a GRU's ``(h,)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from metarl.family.base import TaskFamily
from metarl.learn.adaptation import Actor, Adaptation, BlockEpisodes, block_sizes
from metarl.rollout.trials import ActionCodec, Trial, TrialBatch, flatten_batch

Memory = tuple[Tensor, ...]
EVALUATION_STREAM = 0x2E1
"""Seeds of the evaluation trials' envs, apart from every training stream."""


@runtime_checkable
class TrialPolicy(Protocol):
    """What :func:`trial_adaptation` and :class:`MemoryActor` need of a learner."""

    codec: ActionCodec
    device: torch.device

    def initial_memory(self, n: int) -> Memory:
        """The memory at a trial's start, for ``n`` columns."""

    def act(self, observations: np.ndarray, memory: Memory, generator: torch.Generator,
            deterministic: bool = False) -> tuple[np.ndarray, Memory]:
        """Actions (in :attr:`codec`'s space) for trial observations ``[n, width]`` and the next
        memory; action noise from ``generator``, or the mode if ``deterministic``."""


@dataclass
class MemoryAdaptation(Adaptation):
    """The trials of a learner that adapts in memory: ``memories[k]`` is the memory at the
    start of block ``k`` (columns = tasks), ``tails[k]`` the previous action, reward and flag
    features there, ``[tasks, width]``."""

    policy: TrialPolicy
    family: TaskFamily
    memories: list[Memory]
    tails: np.ndarray

    def actor(self, task: int, blocks: Sequence[int] | None = None) -> MemoryActor:
        chosen = list(range(len(self.memories))) if blocks is None else list(blocks)
        memory = tuple(torch.stack([self.memories[k][j][:, task] for k in chosen], dim=1)
                       for j in range(len(self.memories[0])))
        return MemoryActor(self.policy, self.family, memory, self.tails[chosen, task])


def trial_adaptation(
    policy: TrialPolicy, family: TaskFamily, tasks: Sequence[Any], adapt_steps: int,
    episodes: BlockEpisodes, seed: int,
) -> MemoryAdaptation:
    """One trial of all the blocks' episodes on each of ``tasks``, all at once; block ``k`` is
    the ``k``-th run of ``block_sizes(adapt_steps, episodes)[k]`` episodes of the trial
    (``k*E .. (k+1)*E - 1`` for blocks of ``E``). Env seeds and action noise come from
    ``seed``. Keeps, per task, the memory at the start of each block (what
    :meth:`MemoryAdaptation.actor` plays from)."""
    sizes = block_sizes(adapt_steps, episodes)
    blocks = len(sizes)
    starts = np.cumsum([0, *sizes])  # the trial's episode index where each block begins
    length = int(starts[-1])
    n = len(tasks)
    trials = TrialBatch(family, tasks, episodes=length)
    env_seed = int(np.random.SeedSequence([seed, EVALUATION_STREAM]).generate_state(1)[0])
    obs = trials.reset(env_seed)
    memory = policy.initial_memory(n)
    generator = torch.Generator(device=policy.device)
    generator.manual_seed(seed)
    memories = [tuple(t.clone() for t in memory) for _ in range(blocks)]
    width = policy.codec.tail_width
    tails = np.zeros((blocks, n, width), np.float32)
    tails[0] = obs[:, -width:]
    returns = np.zeros((n, length))
    successes = np.zeros((n, length))
    progress = tqdm(total=length * family.max_episode_steps, unit="step", leave=False,
                    desc=f"trials on {n} tasks", disable=None)
    while trials.running.any():
        actions, memory = policy.act(obs, memory, generator)
        result = trials.step(actions)
        obs = result.observations
        ended = np.flatnonzero(result.episode_ended)
        returns[ended, result.episode_index[ended]] = result.episode_returns[ended]
        if result.episode_successes is not None:
            successes[ended, result.episode_index[ended]] = result.episode_successes[ended]
        played = result.episode_index + 1
        boundary = result.episode_ended & np.isin(played, starts[1:-1])
        for column in np.flatnonzero(boundary):
            block = int(np.searchsorted(starts, played[column]))
            for kept, now in zip(memories[block], memory, strict=True):
                kept[:, column] = now[:, column]
            tails[block, column] = obs[column, -width:]
        progress.update(1)
    progress.close()
    trials.close()
    per_block = [returns[:, a:b].mean(axis=1) for a, b in zip(starts[:-1], starts[1:])]
    success_blocks = ([successes[:, a:b].mean(axis=1) for a, b in zip(starts[:-1], starts[1:])]
                      if family.success_key is not None else None)
    return MemoryAdaptation(per_block, policy, family, memories, tails,
                            successes=success_blocks)


class PriorPolicy:
    """``policy`` acting at every step as it does at a trial's start: from its initial memory,
    with the previous action, reward and episode-end flag zeroed, so that nothing the trial
    showed of the task reaches it, only the current observation. Played through
    :func:`trial_adaptation`, it measures what a learner that adapts in memory does with its
    prior alone: its "before adapting", where its first episode already adapts."""

    def __init__(self, policy: TrialPolicy) -> None:
        self.policy = policy
        self.codec = policy.codec
        self.device = policy.device

    def initial_memory(self, n: int) -> Memory:
        return self.policy.initial_memory(n)

    def act(self, observations: np.ndarray, memory: Memory, generator: torch.Generator,
            deterministic: bool = False) -> tuple[np.ndarray, Memory]:
        blind = observations.copy()
        blind[:, -self.codec.tail_width:] = 0.0  # previous action, reward and flag
        actions, _ = self.policy.act(blind, self.policy.initial_memory(len(blind)), generator,
                                     deterministic)
        return actions, memory


def trial_metrics(trials: Sequence[Trial]) -> dict[str, float]:
    """Training metrics of finished trials: the mean return of their first and last completed
    episodes (``return_before``, ``return_after``), their mean total reward
    (``trial_return``) and, for a family with success, the share of first and last episodes
    that succeeded."""
    metrics = {"return_before": float(np.mean([trial.returns[0] for trial in trials])),
               "return_after": float(np.mean([trial.returns[-1] for trial in trials])),
               "trial_return": float(np.mean([trial.total for trial in trials]))}
    flags = [trial.successes for trial in trials]
    if flags and all(flag is not None for flag in flags):
        metrics["success_before"] = float(np.mean([flag[0] for flag in flags if flag]))
        metrics["success_after"] = float(np.mean([flag[-1] for flag in flags if flag]))
    return metrics


class MemoryActor(Actor):
    """Column ``k`` plays from the memory a trial had after ``k`` blocks, restored at every
    episode start, on the family's own env (its observations extended here as trial
    observations are)."""

    remembers = True

    def __init__(self, policy: TrialPolicy, family: TaskFamily, memory: Memory,
                 tails: np.ndarray) -> None:
        self.policy = policy
        self.start_memory = memory
        self.start_tails = tails
        self.n_columns = len(tails)
        self.observation_space = family.observation_space
        self.generator = torch.Generator(device=policy.device)
        self.reset(0)

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.memory = tuple(t.clone() for t in self.start_memory)
        self.tails = self.start_tails.copy()
        self.actions = np.zeros((self.n_columns, *self.policy.codec.space.shape))

    def start_episode(self, column: int) -> None:
        for now, start in zip(self.memory, self.start_memory, strict=True):
            now[:, column] = start[:, column]
        self.tails[column] = self.start_tails[column]

    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        obs = np.concatenate([flatten_batch(self.observation_space, observations), self.tails],
                             axis=1)
        self.actions, self.memory = self.policy.act(obs, self.memory, self.generator,
                                                    deterministic)
        return self.policy.codec.to_env(self.actions)

    def feedback(self, column: int, reward: float, done: bool) -> None:
        features = self.policy.codec.features(self.actions[column])
        self.tails[column] = np.concatenate([features, np.array([reward, float(done)],
                                                                np.float32)])
