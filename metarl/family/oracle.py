"""The oracle reference: the return of a policy that knows the task.

A family whose best return given the task is computable implements
:meth:`ArrayFamily.oracle_action <metarl.family.array.ArrayFamily.oracle_action>`;
:func:`oracle_returns` plays it through the family's native batched env. That return is the
limit a meta-learner's adaptation approaches, the ``oracle`` row beside the learners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from metarl.config import ConfigError
from metarl.family.array import ArrayFamily, ArrayVectorEnv
from metarl.family.base import TaskFamily
from metarl.family.vector import BatchedEnv

Actor = Callable[[BatchedEnv], np.ndarray]
"""Actions ``[B, *action_shape]`` for the batched env's current step (an oracle reads its
``state`` and ``params``, the true state and task arrays of every column)."""


def has_oracle(family: TaskFamily) -> bool:
    """Whether ``family`` implements ``oracle_action``."""
    return isinstance(family, ArrayFamily) and family.has_oracle


def oracle_returns(
    family: TaskFamily, tasks: Sequence[Any], episodes: int, seed: int
) -> np.ndarray:
    """The oracle's mean undiscounted return per task, ``[len(tasks)]``.

    ``episodes`` episodes of every task are played at once by ``family.oracle_action``
    through ``family.make_vector_env(tasks, episodes)``, one array call per time step; column
    ``i`` is seeded like a single env with ``seed + i`` (as the sampler does), and the steps
    after an episode terminates count nothing. A family without an oracle raises
    :class:`~metarl.config.ConfigError`.
    """
    return oracle_play(family, tasks, episodes, seed)[0]


def oracle_play(family: TaskFamily, tasks: Sequence[Any], episodes: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`oracle_returns` with the share of episodes that succeeded (:func:`play`)."""
    if not has_oracle(family):
        name = getattr(family, "name", type(family).__name__)
        raise ConfigError(
            f"family {name!r} has no oracle: the best return given its task is not computable "
            "here (a family provides one by implementing ArrayFamily.oracle_action)"
        )
    assert isinstance(family, ArrayFamily)

    def act(env: BatchedEnv) -> np.ndarray:
        native = cast(ArrayVectorEnv, env)
        return family.oracle_action(native.state, native.params)

    return play(family, tasks, episodes, seed, act)


def policy_returns(
    family: TaskFamily, tasks: Sequence[Any], episodes: int, seed: int, act: Actor
) -> np.ndarray:
    """The mean undiscounted return per task, ``[len(tasks)]``, of the policy ``act`` (the
    oracle, or a reference policy such as a random or a greedy one), played as
    :func:`oracle_returns` plays the oracle."""
    return play(family, tasks, episodes, seed, act)[0]


def play(
    family: TaskFamily, tasks: Sequence[Any], episodes: int, seed: int, act: Actor
) -> tuple[np.ndarray, np.ndarray | None]:
    """``episodes`` episodes of every task played at once by ``act``: each task's mean
    undiscounted return, and the share of its episodes that succeeded (None for a family
    without success)."""
    if not tasks:
        raise ConfigError("oracle returns need at least one task")
    if isinstance(episodes, bool) or not isinstance(episodes, int | np.integer) or episodes < 1:
        raise ConfigError(f"episodes must be an int >= 1, got {episodes!r}")
    env = family.make_vector_env(tasks, int(episodes))
    env.reset(seed=seed)
    totals = np.zeros(env.num_envs)
    succeeded = np.zeros(env.num_envs, dtype=bool)
    alive = np.ones(env.num_envs, dtype=bool)
    for _ in range(family.max_episode_steps):
        _, reward, terminated, _, info = env.step(act(env))
        totals += np.where(alive, reward, 0.0)
        if family.success_key is not None:
            succeeded |= np.asarray(info[family.success_key], dtype=np.bool_) & alive
        alive &= ~terminated
        if not alive.any():
            break
    env.close()
    shape = (len(tasks), int(episodes))
    successes = (succeeded.reshape(shape).mean(axis=1) if family.success_key is not None
                 else None)
    return totals.reshape(shape).mean(axis=1), successes
