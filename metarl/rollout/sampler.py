"""The batched sampler: every (task, episode) pair of a batch stepped together.

Shapes follow :mod:`metarl.rollout.episodes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from metarl.family.vector import BatchedEnv
from metarl.policies.mlp import MLPPolicy
from metarl.policies.params import Params, is_per_task
from metarl.rollout.episodes import EpisodeBatch


class EnvSource(Protocol):
    """What a sampler needs of a task family: its horizon and its batched envs. Any object
    with these two (a learned model of the family, say) can be sampled from."""

    @property
    def max_episode_steps(self) -> int: ...

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int) -> BatchedEnv: ...


class SamplerError(RuntimeError):
    """Sampling failed for good (e.g. a remote worker kept dying); the message says where."""


class Sampler:
    """Rolls out a policy on a batch of tasks, every (task, episode) pair stepped together.

    One policy forward per time step for the whole batch; with per-task parameters, each
    task's columns are evaluated with its own parameters in that same forward. Actions are
    drawn from ``generator`` so that sampling is reproducible.
    """

    def __init__(
        self, family: EnvSource, policy: MLPPolicy, device: torch.device, seed: int = 0
    ) -> None:
        self.family = family
        self.policy = policy
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def sample(
        self, tasks: Sequence[Any], episodes_per_task: int, params: Params, seed: int
    ) -> EpisodeBatch:
        """Roll out ``episodes_per_task`` episodes on each task with ``params``.

        ``params`` are shared (one policy for all tasks) or per task (leading ``len(tasks)``).
        Environments are seeded with ``seed``; action noise comes from :attr:`generator`.
        """
        columns = len(tasks) * episodes_per_task
        noise = self.policy.noise(
            (self.family.max_episode_steps, columns), self.generator, self.device
        )
        return self.rollout(tasks, episodes_per_task, params, seed, noise)

    @torch.no_grad()
    def rollout(
        self, tasks: Sequence[Any], episodes_per_task: int, params: Params, seed: int,
        noise: Tensor,
    ) -> EpisodeBatch:
        """:meth:`sample` with the action noise given, ``[T, B, ...]``: a pure function of its
        arguments, so any slice of tasks can be rolled out elsewhere (column ``i`` of a batch
        seeded with ``seed`` is seeded like a single env with ``seed + i``)."""
        n_tasks = len(tasks)
        env = self.family.make_vector_env(tasks, episodes_per_task)
        obs, _ = env.reset(seed=seed)
        horizon = self.family.max_episode_steps
        n = env.num_envs
        grouped = is_per_task(params)
        # Steps are recorded on the host and moved to the device once, at the end.
        observations = np.zeros((horizon, *obs.shape), dtype=np.float32)
        actions = torch.zeros((horizon, n, *self.policy.action_shape),
                              dtype=self.policy.action_dtype)
        host_actions = actions.numpy()
        rewards = np.zeros((horizon, n), dtype=np.float32)
        mask = np.zeros((horizon, n), dtype=np.float32)
        alive = np.ones(n, dtype=bool)
        success_key: str | None = getattr(self.family, "success_key", None)
        succeeded = np.zeros(n, dtype=bool) if success_key is not None else None
        batch_shape = (n_tasks, episodes_per_task) if grouped else (n,)
        step_noise = noise.view(horizon, *batch_shape, *noise.shape[2:])
        for t in range(horizon):
            observations[t] = obs
            obs_t = torch.from_numpy(observations[t]).to(self.device).view(*batch_shape, -1)
            action = self.policy.act(obs_t, params, step_noise[t])
            host_actions[t] = action.reshape(n, *self.policy.action_shape).cpu().numpy()
            mask[t] = alive
            obs, reward, terminated, _, info = env.step(host_actions[t])
            rewards[t] = reward
            if success_key is not None and succeeded is not None:
                succeeded |= np.asarray(info[success_key], dtype=np.bool_) & alive
            alive &= ~terminated
            if not alive.any():
                break
        env.close()
        return EpisodeBatch(
            observations=torch.as_tensor(observations, device=self.device),
            actions=actions.to(self.device),
            rewards=torch.as_tensor(rewards, device=self.device),
            mask=torch.as_tensor(mask, device=self.device),
            task_index=torch.arange(n_tasks, device=self.device).repeat_interleave(
                episodes_per_task
            ),
            n_tasks=n_tasks,
            episodes_per_task=episodes_per_task,
            tasks=tuple(tasks),
            successes=None if succeeded is None else torch.as_tensor(
                succeeded.astype(np.float32), device=self.device),
        )

