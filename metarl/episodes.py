"""Episode batches and the batched sampler.

Dimension convention, used throughout metarl: tensors are time-major ``[T, B, ...]`` with
``T`` the family's horizon and ``B = n_tasks * episodes_per_task`` columns, task-major
(column ``b`` belongs to task ``b // episodes_per_task``). ``mask[t, b]`` is 1 where step ``t``
of episode ``b`` happened (0 after termination). "Grouped" tensors put the task first:
``[n_tasks, T * episodes_per_task, ...]``, the layout per-task parameters are evaluated in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.family import TaskFamily
from metarl.policy import MLPPolicy, Params, is_per_task


@dataclass
class EpisodeBatch:
    """Episodes of ``n_tasks`` tasks, ``episodes_per_task`` each, time-major on one device."""

    observations: Tensor  # [T, B, obs_dim] float32
    actions: Tensor  # [T, B, act_dim] float32 (Box) or [T, B] int64 (Discrete)
    rewards: Tensor  # [T, B] float32, 0 where mask is 0
    mask: Tensor  # [T, B] float32
    task_index: Tensor  # [B] int64
    n_tasks: int
    episodes_per_task: int

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """The same episodes on ``device``."""
        return EpisodeBatch(
            observations=self.observations.to(device),
            actions=self.actions.to(device),
            rewards=self.rewards.to(device),
            mask=self.mask.to(device),
            task_index=self.task_index.to(device),
            n_tasks=self.n_tasks,
            episodes_per_task=self.episodes_per_task,
        )

    @property
    def horizon(self) -> int:
        return self.rewards.shape[0]

    @property
    def returns(self) -> Tensor:
        """Undiscounted return of every episode, ``[B]``."""
        return self.rewards.sum(dim=0)

    @property
    def lengths(self) -> Tensor:
        """Number of valid steps of every episode, ``[B]``."""
        return self.mask.sum(dim=0)

    def task_returns(self) -> Tensor:
        """Mean undiscounted return per task, ``[n_tasks]``."""
        return self.returns.view(self.n_tasks, self.episodes_per_task).mean(dim=1)

    def group(self, x: Tensor) -> Tensor:
        """``[T, B, ...]`` -> ``[n_tasks, T * episodes_per_task, ...]``."""
        t, _, *rest = x.shape
        grouped = x.reshape(t, self.n_tasks, self.episodes_per_task, *rest).movedim(1, 0)
        return grouped.reshape(self.n_tasks, t * self.episodes_per_task, *rest)

    def ungroup(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`group`."""
        _, _, *rest = x.shape
        split = x.reshape(self.n_tasks, self.horizon, self.episodes_per_task, *rest).movedim(0, 1)
        return split.reshape(self.horizon, self.n_tasks * self.episodes_per_task, *rest)

    def log_probs(self, policy: MLPPolicy, params: Params) -> Tensor:
        """``log pi(a_t | s_t)`` of every step, ``[T, B]``, under shared or per-task ``params``."""
        if not is_per_task(params):
            return policy.distribution(self.observations, params).log_prob(self.actions)
        return self.log_probs_under(self.distributions(policy, params))

    def log_probs_under(self, dist: Any) -> Tensor:
        """``[T, B]`` log-probabilities of the actions under grouped distributions ``dist``."""
        return self.ungroup(dist.log_prob(self.group(self.actions)))

    def distributions(self, policy: MLPPolicy, params: Params) -> Any:
        """The policy's distributions over the grouped observations (per-task ``params``)."""
        return policy.distribution(self.group(self.observations), params)

    def sample_columns(self, fraction: float, generator: torch.Generator) -> Tensor:
        """Random columns keeping ``fraction`` of each task's episodes (at least one)."""
        keep = max(1, round(fraction * self.episodes_per_task))
        device = generator.device
        chosen = torch.randperm(self.episodes_per_task, generator=generator, device=device)
        tasks = torch.arange(self.n_tasks, device=device)[:, None]
        columns = tasks * self.episodes_per_task + chosen[:keep].sort().values[None, :]
        return columns.reshape(-1).to(self.rewards.device)

    def select_columns(self, columns: Tensor) -> EpisodeBatch:
        """The episodes in ``columns`` (as made by :meth:`sample_columns`)."""
        return EpisodeBatch(
            observations=self.observations[:, columns],
            actions=self.actions[:, columns],
            rewards=self.rewards[:, columns],
            mask=self.mask[:, columns],
            task_index=self.task_index[columns],
            n_tasks=self.n_tasks,
            episodes_per_task=columns.numel() // self.n_tasks,
        )


class SamplerError(RuntimeError):
    """Sampling failed for good (e.g. a remote worker kept dying); the message says where."""


class Sampler:
    """Rolls out a policy on a batch of tasks, every (task, episode) pair stepped together.

    One policy forward per time step for the whole batch; with per-task parameters, each
    task's columns are evaluated with its own parameters in that same forward. Actions are
    drawn from ``generator`` so that sampling is reproducible.
    """

    def __init__(self, family: TaskFamily, policy: MLPPolicy, device: torch.device) -> None:
        self.family = family
        self.policy = policy
        self.device = device
        self.generator = torch.Generator(device=device)

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
        batch_shape = (n_tasks, episodes_per_task) if grouped else (n,)
        step_noise = noise.view(horizon, *batch_shape, *noise.shape[2:])
        for t in range(horizon):
            observations[t] = obs
            obs_t = torch.from_numpy(observations[t]).to(self.device).view(*batch_shape, -1)
            action = self.policy.act(obs_t, params, step_noise[t])
            host_actions[t] = action.reshape(n, *self.policy.action_shape).cpu().numpy()
            mask[t] = alive
            obs, reward, terminated, _, _ = env.step(host_actions[t])
            rewards[t] = reward
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
        )
