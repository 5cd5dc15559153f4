"""Episode batches: what a rollout returns, as plain tensors.

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

import torch
from torch import Tensor


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
    tasks: tuple[Any, ...] = ()
    """The tasks the episodes were sampled on, in order (empty when unknown)."""
    successes: Tensor | None = None
    """``[B]`` 1.0 for an episode that succeeded (at any step), for families that define
    success (:attr:`metarl.family.base.TaskFamily.success_key`); None otherwise."""

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
            tasks=self.tasks,
            successes=None if self.successes is None else self.successes.to(device),
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

    def task_successes(self) -> Tensor | None:
        """Share of each task's episodes that succeeded, ``[n_tasks]`` (None: no success)."""
        if self.successes is None:
            return None
        return self.successes.view(self.n_tasks, self.episodes_per_task).mean(dim=1)

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
            tasks=self.tasks,
            successes=None if self.successes is None else self.successes[columns],
        )

    @classmethod
    def concatenate(cls, batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
        """Batches of consecutive task slices (same ``episodes_per_task``) as one batch."""
        episodes = batches[0].episodes_per_task
        if any(batch.episodes_per_task != episodes for batch in batches):
            raise ValueError("batches to concatenate need the same episodes_per_task")
        n_tasks = sum(batch.n_tasks for batch in batches)
        device = batches[0].rewards.device
        return cls(
            observations=torch.cat([batch.observations for batch in batches], dim=1),
            actions=torch.cat([batch.actions for batch in batches], dim=1),
            rewards=torch.cat([batch.rewards for batch in batches], dim=1),
            mask=torch.cat([batch.mask for batch in batches], dim=1),
            task_index=torch.arange(n_tasks, device=device).repeat_interleave(episodes),
            n_tasks=n_tasks,
            episodes_per_task=episodes,
            tasks=tuple(task for batch in batches for task in batch.tasks),
            successes=None if any(batch.successes is None for batch in batches)
            else torch.cat([batch.successes for batch in batches if batch.successes is not None]),
        )
