"""The Ray sampler backend: a meta-batch's tasks split across Ray actors.

Each actor holds a :class:`~metarl.rollout.sampler.Sampler` over its own copy of the family and of
the policy (on CPU). :meth:`RaySampler.sample` draws the action noise on the driver exactly as
the local sampler does, gives worker ``k`` the same contiguous slice of tasks every time (its
parameters, its noise columns and the environment seed of its first column), and concatenates
the slices' episode batches, so a seeded run gives the local sampler's episodes (equal on
every step that happened; after an episode ends the local sampler may step it on while a
finished slice stops, and those masked entries differ).

An actor that dies is restarted by Ray (as often as it dies) and its slice is rolled out again,
up to ``max_retries`` times in one call; after that :class:`WorkerFailure` names the worker
and the error, so a run never hangs and its run directory keeps the last checkpoint.

``metarl bench --backend ray`` measures it against the local sampler
(:func:`metarl.tools.bench.ray_throughput`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import torch
from torch import Tensor

from metarl.config import ConfigError
from metarl.family.base import TaskFamily
from metarl.policies.mlp import MLPPolicy
from metarl.policies.params import Params, is_per_task
from metarl.process import set_threads
from metarl.rollout.episodes import EpisodeBatch
from metarl.rollout.sampler import Sampler, SamplerError

MAX_RETRIES = 3
"""Times one worker's slice is rolled out again after its actor died (in one call)."""


class WorkerFailure(SamplerError):
    """A sampler actor kept failing; the message names the worker and its tasks."""


@ray.remote(num_cpus=1, max_restarts=-1)
class _SamplerWorker:
    """One actor: a local sampler on CPU for whatever slice of tasks it is sent."""

    def __init__(self, family: TaskFamily, policy: MLPPolicy) -> None:
        set_threads(1)
        self.sampler = Sampler(family, policy, torch.device("cpu"))

    def rollout(
        self, tasks: Sequence[Any], episodes_per_task: int, params: Params, seed: int,
        noise: Tensor,
    ) -> EpisodeBatch:
        return self.sampler.rollout(tasks, episodes_per_task, params, seed, noise)


def task_slices(n_tasks: int, num_workers: int) -> list[range]:
    """Contiguous task slices, one per worker that gets any (sizes differ by at most one)."""
    bounds = np.linspace(0, n_tasks, min(num_workers, n_tasks) + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class RaySampler(Sampler):
    """A :class:`Sampler` whose rollouts run on ``num_workers`` Ray actors.

    Connects to the cluster at ``ray_address`` (a local Ray instance with ``num_workers``
    CPUs when empty) unless Ray is already initialised in this process.
    """

    def __init__(
        self, family: TaskFamily, policy: MLPPolicy, device: torch.device, num_workers: int,
        ray_address: str = "", seed: int = 0, max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(family, policy, device, seed)
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not ray.is_initialized():
            if ray_address:
                ray.init(address=ray_address)
            else:
                ray.init(num_cpus=num_workers, include_dashboard=False)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < num_workers:
            raise ConfigError(
                f"--num-workers {num_workers} needs {num_workers} CPUs (one per sampler actor), "
                f"but the Ray cluster has {cpus:g}"
            )
        self.max_retries = max_retries
        worker_policy = copy.deepcopy(policy).cpu()
        self.workers = [
            _SamplerWorker.remote(family, worker_policy)  # type: ignore[attr-defined]
            for _ in range(num_workers)
        ]

    def rollout(
        self, tasks: Sequence[Any], episodes_per_task: int, params: Params, seed: int,
        noise: Tensor,
    ) -> EpisodeBatch:
        """:meth:`Sampler.rollout`, worker ``k`` rolling out the ``k``-th task slice."""
        tasks = list(tasks)
        grouped = is_per_task(params)
        cpu_params = {key: value.detach().cpu() for key, value in params.items()}
        cpu_noise = noise.cpu()

        def submit(k: int, slice_: range) -> ray.ObjectRef:
            columns = slice(slice_.start * episodes_per_task, slice_.stop * episodes_per_task)
            slice_params = (
                {key: value[slice_.start:slice_.stop] for key, value in cpu_params.items()}
                if grouped else cpu_params
            )
            return self.workers[k].rollout.remote(
                tasks[slice_.start:slice_.stop], episodes_per_task, slice_params,
                seed + columns.start, cpu_noise[:, columns],
            )

        slices = task_slices(len(tasks), len(self.workers))
        pending = {k: submit(k, slice_) for k, slice_ in enumerate(slices)}
        results: dict[int, EpisodeBatch] = {}
        failures = dict.fromkeys(pending, 0)
        while pending:
            for k, ref in list(pending.items()):
                try:
                    results[k] = ray.get(ref)
                    del pending[k]
                except ray.exceptions.RayActorError as error:
                    failures[k] += 1
                    if failures[k] > self.max_retries:
                        raise WorkerFailure(
                            f"sampler worker {k} (tasks {slices[k].start}..{slices[k].stop - 1})"
                            f" failed {failures[k]} times; last error: {error}"
                        ) from None
                    pending[k] = submit(k, slices[k])
        batch = EpisodeBatch.concatenate([results[k] for k in range(len(slices))])
        return batch.to(self.device)

    def close(self) -> None:
        """End the actors now (they also end when the sampler is garbage-collected)."""
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
