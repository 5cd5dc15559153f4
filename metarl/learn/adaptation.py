"""What adapting to held-out tasks produces: returns per block of episodes, and actors.

Block ``k`` of a task is the ``E`` episodes played after ``k`` adaptation steps. A gradient
learner plays block ``k`` with the parameters after ``k`` inner steps; a learner that adapts in
its memory (RL^2) plays it as episodes ``k*E .. (k+1)*E - 1`` of one trial. Either way the
learner returns an :class:`Adaptation`: the mean return of every block on every task (what
``metarl evaluate`` and ``compare`` report) and, per task, an :class:`Actor` whose column ``k``
acts as the learner does after ``k`` steps (what ``metarl watch`` plays, one panel a column).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from metarl.policies.mlp import MLPPolicy
from metarl.policies.params import Params, is_per_task

BlockEpisodes = int | Sequence[int]
"""Episodes per block: one number for every block, or one per block (the Meta-World protocol:
adaptation episodes, then evaluation episodes)."""


def block_sizes(adapt_steps: int, episodes: BlockEpisodes) -> list[int]:
    """The episodes of each of the ``adapt_steps + 1`` blocks."""
    if isinstance(episodes, int):
        return [episodes] * (adapt_steps + 1)
    sizes = [int(e) for e in episodes]
    if len(sizes) != adapt_steps + 1 or min(sizes) < 1:
        raise ValueError(f"need {adapt_steps + 1} block sizes >= 1, got {sizes}")
    return sizes


class Actor(abc.ABC):
    """Adapted policies acting in a row of envs, one column each, one step at a time.

    The caller resets an env, then calls :meth:`start_episode` for its column; each step it
    calls :meth:`act` on every column's observation and, after stepping, :meth:`feedback` for
    each column it stepped. A learner that adapts in its memory returns to the memory it had
    after its adaptation at every :meth:`start_episode`, so column ``k`` keeps showing the
    learner after ``k`` steps.
    """

    n_columns: int
    remembers: bool = False
    """Whether it adapts on what its actions earn (:meth:`feedback`): a learner that adapts in
    memory."""

    @abc.abstractmethod
    def reset(self, seed: int) -> None:
        """Every column starts afresh; action noise is drawn from a stream seeded by ``seed``."""

    @abc.abstractmethod
    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action per column for ``observations`` ``[n_columns, ...]``: sampled, or the
        distribution's mode if ``deterministic``."""

    def start_episode(self, column: int) -> None:  # noqa: B027 (optional hook)
        """``column``'s env was reset: a new episode begins there."""

    def feedback(self, column: int, reward: float, done: bool) -> None:  # noqa: B027
        """What ``column``'s last action earned, and whether its episode ended."""


class ParamsActor(Actor):
    """A feed-forward policy with one parameter set per column (per-task layout)."""

    def __init__(self, policy: MLPPolicy, params: Params, device: torch.device) -> None:
        self.policy = policy
        self.params = params
        self.device = device
        self.n_columns = int(params["layers.0.weight"].shape[0])
        self.generator = torch.Generator(device=device)

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        obs = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            dist = self.policy.distribution(obs[:, None], self.params)
            action = dist.mode if deterministic else self.policy.sample(dist, self.generator)
        return action.reshape(self.n_columns, *self.policy.action_shape).cpu().numpy()


@dataclass
class Adaptation(abc.ABC):
    """The outcome of adapting to some tasks: ``returns[k][i]`` is the mean return of the
    episodes of block ``k`` on task ``i``."""

    returns: list[np.ndarray]
    successes: list[np.ndarray] | None = field(default=None, kw_only=True)
    """``successes[k][i]``: the share of block ``k``'s episodes on task ``i`` that succeeded,
    for families that define success (None otherwise, or where a learner cannot tell)."""

    @abc.abstractmethod
    def actor(self, task: int, blocks: Sequence[int] | None = None) -> Actor:
        """An actor with one column per block of ``blocks`` (default: every block): the
        column of block ``k`` acts as after ``k`` steps on task ``task`` (an index into the
        tasks adapted to)."""


@dataclass
class ParamsAdaptation(Adaptation):
    """Adaptation by parameters: ``params[k]`` are the parameters after ``k`` steps (shared,
    or per task)."""

    params: list[Params]
    policy: MLPPolicy
    device: torch.device

    def actor(self, task: int, blocks: Sequence[int] | None = None) -> ParamsActor:
        chosen = range(len(self.params)) if blocks is None else blocks
        columns = [params_for(self.params[k], task) for k in chosen]
        return ParamsActor(
            self.policy, {key: torch.stack([c[key] for c in columns]) for key in columns[0]},
            self.device,
        )


def params_for(params: Params, task: int) -> Params:
    """Task ``task``'s parameters from a shared or per-task set (the module's own shapes)."""
    return {key: value[task] for key, value in params.items()} if is_per_task(params) else params
