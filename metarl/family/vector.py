"""Batched envs: one env object stepping every (task, episode) column at once.

Shape convention: ``B = n_tasks * episodes_per_task`` columns, task-major (column
``task * episodes_per_task + episode``). Observations are ``[B, *obs_shape]``, rewards and flags
``[B]``.

Semantics (autoreset disabled): a column that terminates stays terminated; later steps give it
reward 0 and ``terminated=True``, and its observations are undefined (samplers mask them).
``reset(seed=s)`` seeds column ``i`` like a single env reset with ``seed=s + i``. Each column
counts its own episode's steps and is truncated at the horizon. :meth:`BatchedEnv.reset_columns`
starts a new episode in some columns only (their random streams continue): what a trial of
several episodes of one task needs (:mod:`metarl.rollout.trials`).

Flags: a batched env built with ``flags=("success",)`` gathers each step's ``info["success"]``
of every column into a ``[B]`` bool array under the same key of the step's ``info`` (False for
a column not stepped because it had terminated). Families that define success
(:attr:`metarl.family.base.TaskFamily.success_key`) report it this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array


class BatchedEnv(VectorEnv):
    """Base of batched task envs: a Gymnasium ``VectorEnv`` with autoreset disabled."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.DISABLED}

    def _set_spaces(self, n: int, observation: gym.Space, action: gym.Space) -> None:
        self.num_envs = n
        self.single_observation_space = observation
        self.single_action_space = action
        self.observation_space = batch_space(observation, n)
        self.action_space = batch_space(action, n)

    def reset_columns(self, columns: np.ndarray) -> np.ndarray:
        """Start a new episode in the columns where the boolean mask ``columns`` is set, each
        continuing its own random stream, and return every column's observation (the others'
        unchanged)."""
        raise NotImplementedError(f"{type(self).__name__} cannot restart single columns")


class SyncBatchedEnv(BatchedEnv):
    """The generic fallback: steps single Gymnasium envs one after another.

    Works for any family before it has array dynamics; native batched envs must agree with it
    exactly for the same seeds and actions.
    """

    def __init__(self, envs: list[gym.Env], flags: Sequence[str] = ()) -> None:
        if not envs:
            raise ValueError("SyncBatchedEnv needs at least one env")
        self.envs = envs
        self.flags = tuple(flags)
        self._set_spaces(len(envs), envs[0].observation_space, envs[0].action_space)
        self._observations: Any = create_empty_array(self.single_observation_space, len(envs))
        self._done = np.zeros(len(envs), dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        observations = []
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + i, options=options)
            observations.append(obs)
        self._done[:] = False
        self._observations = concatenate(
            self.single_observation_space, observations, self._observations
        )
        return self._observations.copy(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        n = self.num_envs
        rewards = np.zeros(n, dtype=np.float64)
        truncated = np.zeros(n, dtype=bool)
        flags = {key: np.zeros(n, dtype=bool) for key in self.flags}
        observations = []
        for i, env in enumerate(self.envs):
            if self._done[i]:
                observations.append(self._observations[i])
                continue
            obs, reward, term, trunc, info = env.step(actions[i])
            observations.append(obs)
            rewards[i] = reward
            self._done[i] = term
            truncated[i] = trunc and not term
            for key, values in flags.items():
                values[i] = bool(info[key])
        self._observations = concatenate(
            self.single_observation_space, observations, self._observations
        )
        return self._observations.copy(), rewards, self._done.copy(), truncated, flags

    def reset_columns(self, columns: np.ndarray) -> np.ndarray:
        observations = list(self._observations)
        for i in np.flatnonzero(columns):
            observations[i], _ = self.envs[i].reset()
            self._done[i] = False
        self._observations = concatenate(
            self.single_observation_space, observations, self._observations
        )
        return self._observations.copy()

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def episode_successes(flags: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Which episodes succeeded: ``flags[T, B]`` are the per-step success flags of ``B``
    episodes (a batched env's ``info[success_key]`` stacked over steps), ``mask[T, B]`` their
    valid steps (a step after termination does not count). An episode succeeds if its flag
    is true at any valid step; returns ``[B]`` bool."""
    flags = np.asarray(flags, dtype=bool)
    if flags.ndim != 2:
        raise ValueError(f"flags must be [T, B], got shape {flags.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != flags.shape:
            raise ValueError(f"mask {mask.shape} must have the shape of flags {flags.shape}")
        flags = flags & mask.astype(bool)
    return np.asarray(flags.any(axis=0))
