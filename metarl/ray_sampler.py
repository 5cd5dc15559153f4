"""The Ray sampler backend: a meta-batch's tasks split across Ray actors.

Each actor holds a :class:`~metarl.episodes.Sampler` over its own copy of the family and of
the policy (on CPU). :meth:`RaySampler.sample` draws the action noise on the driver exactly as
the local sampler does, gives worker ``k`` the same contiguous slice of tasks every time (its
parameters, its noise columns and the environment seed of its first column), and concatenates
the slices' episode batches, so a seeded run gives the local sampler's episodes (equal on
every step that happened; after an episode ends the local sampler may step it on while a
finished slice stops, and those masked entries differ).

An actor that dies is restarted by Ray (as often as it dies) and its slice is rolled out again,
up to ``max_retries`` times in one call; after that :class:`WorkerFailure` names the worker
and the error, so a run never hangs and its run directory keeps the last checkpoint.

:func:`ray_throughput` measures the backend against the local sampler (``metarl bench``),
with :class:`CostlyFamily` standing in for slower simulators.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import torch
from torch import Tensor

from metarl.bench import median_seconds
from metarl.config import ConfigError
from metarl.episodes import EpisodeBatch, Sampler, SamplerError
from metarl.family import TaskFamily
from metarl.policy import MLPPolicy, Params, is_per_task, make_policy
from metarl.vector import BatchedEnv

MAX_RETRIES = 3
"""Times one worker's slice is rolled out again after its actor died (in one call)."""


class WorkerFailure(SamplerError):
    """A sampler actor kept failing; the message names the worker and its tasks."""


@ray.remote(num_cpus=1, max_restarts=-1)
class _SamplerWorker:
    """One actor: a local sampler on CPU for whatever slice of tasks it is sent."""

    def __init__(self, family: TaskFamily, policy: MLPPolicy) -> None:
        torch.set_num_threads(1)
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


def concatenate(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
    """Episode batches of consecutive task slices (same ``episodes_per_task``) as one batch."""
    episodes = batches[0].episodes_per_task
    if any(batch.episodes_per_task != episodes for batch in batches):
        raise ValueError("batches to concatenate need the same episodes_per_task")
    n_tasks = sum(batch.n_tasks for batch in batches)
    device = batches[0].rewards.device
    return EpisodeBatch(
        observations=torch.cat([batch.observations for batch in batches], dim=1),
        actions=torch.cat([batch.actions for batch in batches], dim=1),
        rewards=torch.cat([batch.rewards for batch in batches], dim=1),
        mask=torch.cat([batch.mask for batch in batches], dim=1),
        task_index=torch.arange(n_tasks, device=device).repeat_interleave(episodes),
        n_tasks=n_tasks,
        episodes_per_task=episodes,
    )


class RaySampler(Sampler):
    """A :class:`Sampler` whose rollouts run on ``num_workers`` Ray actors.

    Connects to the cluster at ``ray_address`` (a local Ray instance with ``num_workers``
    CPUs when empty) unless Ray is already initialised in this process.
    """

    def __init__(
        self, family: TaskFamily, policy: MLPPolicy, device: torch.device, num_workers: int,
        ray_address: str = "", max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(family, policy, device)
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
            _SamplerWorker.remote(family, worker_policy) for _ in range(num_workers)
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
        batch = concatenate([results[k] for k in range(len(slices))])
        return batch.to(self.device)

    def close(self) -> None:
        """End the actors now (they also end when the sampler is garbage-collected)."""
        for worker in self.workers:
            ray.kill(worker)
        self.workers = []


class CostlyFamily:
    """``family`` with ``step_seconds`` of extra CPU time per environment step, standing in for
    a slower simulator (busy work, so it slows down like one when cores are shared). The
    sampler needs only ``make_vector_env`` and ``max_episode_steps``."""

    def __init__(self, family: TaskFamily, step_seconds: float) -> None:
        self.family = family
        self.step_seconds = step_seconds
        self.max_episode_steps = family.max_episode_steps

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int) -> BatchedEnv:
        env = self.family.make_vector_env(tasks, episodes_per_task)
        step = env.step

        def costly_step(actions: np.ndarray) -> Any:
            end = time.thread_time() + self.step_seconds * env.num_envs
            while time.thread_time() < end:
                pass
            return step(actions)

        env.step = costly_step  # type: ignore[method-assign]
        return env


def ray_throughput(
    family: TaskFamily,
    worker_counts: Sequence[int] = (1, 2),
    step_costs: Sequence[float] = (0.0,),
    n_tasks: int = 20,
    episodes: int = 20,
    repeats: int = 3,
) -> list[dict[str, float]]:
    """Environment steps per second of the local sampler and of the Ray backend with each of
    ``worker_counts`` actors, for each extra CPU cost per env step in ``step_costs`` (seconds).

    Reference config by default (20 tasks x 20 episodes, [64, 64] tanh policy, shared
    parameters). Starts a local Ray instance with ``max(worker_counts)`` CPUs unless Ray is
    initialised, and shuts down what it started.
    """
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(worker_counts), include_dashboard=False)
    try:
        env = family.make_env()
        policy = make_policy(env.observation_space, env.action_space)
        env.close()
        params = {key: value.detach() for key, value in policy.parameters_dict().items()}
        tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
        steps = n_tasks * episodes * family.max_episode_steps
        cpu = torch.device("cpu")
        rows = []
        for cost in step_costs:
            costly = CostlyFamily(family, cost)
            local_s = _seconds_per_sample(Sampler(costly, policy, cpu),  # type: ignore[arg-type]
                                          tasks, episodes, params, repeats)
            for workers in worker_counts:
                remote = RaySampler(costly, policy, cpu, workers)  # type: ignore[arg-type]
                ray_s = _seconds_per_sample(remote, tasks, episodes, params, repeats)
                remote.close()
                rows.append({
                    "step_cost_us": cost * 1e6,
                    "num_workers": workers,
                    "local_env_steps_per_second": steps / local_s,
                    "ray_env_steps_per_second": steps / ray_s,
                    "local_seconds_per_sample": local_s,
                    "ray_seconds_per_sample": ray_s,
                    "speedup": local_s / ray_s,
                })
        return rows
    finally:
        if started:
            ray.shutdown()


def _seconds_per_sample(
    sampler: Sampler, tasks: Sequence[Any], episodes: int, params: Params, repeats: int
) -> float:
    return median_seconds(lambda: sampler.sample(tasks, episodes, params, 0), repeats)
