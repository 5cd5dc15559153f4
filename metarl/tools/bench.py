"""``metarl bench``: sampler throughput and seconds per meta-iteration, measured.

Figures are medians over repeats after a warm-up. The reference configuration is
Navigation2D, 20 tasks x 20 episodes, horizon 100, MAML-TRPO with one inner step; its figures
sit at the top level of the JSON (``env_steps_per_second``, ``seconds_per_iteration``).
:func:`ray_throughput` times the Ray sampler backend against the local sampler.
"""

from __future__ import annotations

import functools
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from metarl.family.base import TaskFamily
from metarl.family.vector import BatchedEnv
from metarl.learn.gradient import GradientLearner
from metarl.learn.learner import Learner
from metarl.policies.mlp import make_policy
from metarl.policies.params import Params, detach_params, per_task
from metarl.process import set_threads
from metarl.registry import get_family
from metarl.rollout.sampler import Sampler
from metarl.run.factory import build_learner, resolve_device
from metarl.run.settings import resolve_settings

SCALING_SIZES = ((20, 20), (50, 20), (100, 20), (200, 50))
"""(tasks, episodes per task) for the sampler's scaling table."""
ITERATION_TASKS = (10, 20, 40)
"""Meta-batch sizes for the meta-iteration scaling table (20 episodes each)."""


def _progress(items: Any, desc: str) -> Any:
    """A progress bar over ``items`` on a terminal (none when output is redirected)."""
    return tqdm(items, desc=desc, leave=False, disable=None)


def median_seconds_and_result(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median time of ``run`` over at least ``repeats`` calls and ``0.2 * repeats`` seconds of
    calls (fast calls are repeated more: their medians are noisy on a shared machine), and
    what its untimed warm-up call returned."""
    result = run()  # warm-up
    times: list[float] = []
    while len(times) < repeats or sum(times) < 0.2 * repeats:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    """:func:`median_seconds_and_result` without the result."""
    return median_seconds_and_result(run, repeats)[0]


def sampler_throughput(
    learner: GradientLearner, n_tasks: int, episodes: int, repeats: int
) -> dict[str, float]:
    """Environment steps per second of the sampler with shared and with per-task parameters.

    Steps are the ones the episodes took (a family whose episodes end early simulates fewer
    than tasks x episodes x horizon).
    """
    tasks = learner.family.sample_tasks(n_tasks, np.random.default_rng(0))
    shared = learner.meta_params()
    grouped = per_task(shared, n_tasks)

    def steps_taken(params: Any) -> int:
        return int(learner.sampler.sample(tasks, episodes, params, 0).mask.sum())

    shared_s, steps = median_seconds_and_result(lambda: steps_taken(shared), repeats)
    grouped_s, grouped_steps = median_seconds_and_result(lambda: steps_taken(grouped), repeats)
    return {
        "tasks": n_tasks,
        "episodes_per_task": episodes,
        "env_steps_sampled": steps,
        "env_steps_per_second": steps / shared_s,
        "env_steps_per_second_per_task_params": grouped_steps / grouped_s,
    }


def batched_vs_sync(
    family: TaskFamily, n_tasks: int, episodes: int, repeats: int
) -> dict[str, float]:
    """Random-action steps per second: the family's batched env vs gymnasium's SyncVectorEnv.

    Both count simulated steps: the batched env stops simulating a column whose episode has
    ended, SyncVectorEnv resets it on the next step and simulates on from there.
    """
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    horizon = family.max_episode_steps
    batched = family.make_vector_env(tasks, episodes)
    sync = gym.vector.SyncVectorEnv(
        [functools.partial(family.make_env, task) for task in tasks for _ in range(episodes)]
    )
    batched.action_space.seed(0)
    actions = [batched.action_space.sample() for _ in range(horizon)]

    def simulated_steps(env: Any, autoresets: bool) -> int:
        env.reset(seed=0)
        ended = np.zeros(env.num_envs, dtype=bool)
        steps = 0
        for action in actions:
            steps += int(np.count_nonzero(~ended))
            _, _, terminated, truncated, _ = env.step(action)
            ended = (terminated | truncated) if autoresets else ended | terminated | truncated
        return steps

    batched_s, batched_steps = median_seconds_and_result(
        lambda: simulated_steps(batched, autoresets=False), repeats)
    sync_s, sync_steps = median_seconds_and_result(
        lambda: simulated_steps(sync, autoresets=True), max(1, repeats // 3))
    batched_rate, sync_rate = batched_steps / batched_s, sync_steps / sync_s
    return {
        "batched_steps_per_second": batched_rate,
        "sync_vector_env_steps_per_second": sync_rate,
        "speedup": batched_rate / sync_rate,
        "batched_simulated_steps": batched_steps,
        "sync_vector_env_simulated_steps": sync_steps,
    }


def meta_iteration_seconds(learner: Learner, repeats: int) -> dict[str, float]:
    """Median seconds per training iteration, its split into the learner's phases, and the
    training env steps per second (the iteration's real env steps over its whole time,
    updates included)."""
    records = []
    learner.step(learner.family.sample_tasks(learner.config.meta_batch_size, learner.rng))
    for _ in range(repeats):
        tasks = learner.family.sample_tasks(learner.config.meta_batch_size, learner.rng)
        start = time.perf_counter()
        metrics = learner.step(tasks)
        metrics["total"] = time.perf_counter() - start
        records.append(metrics)
    keys = sorted(key for key in records[0] if key.endswith("_seconds"))
    result = {"seconds_per_iteration": statistics.median(r["total"] for r in records)}
    result.update({key: statistics.median(r[key] for r in records) for key in keys})
    result["training_env_steps_per_second"] = statistics.median(
        r["env_steps"] / r["total"] for r in records)
    return result


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far.

    On Linux, ``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss``, which survives
    ``exec`` and so would report the parent's peak in a freshly spawned worker, it belongs to
    this process's own address space. Elsewhere, ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, else KiB


def _inner_steps_figures(args: tuple[str, str, str, dict[str, Any], int, int]) -> dict[str, Any]:
    family, algo, device, options, steps, repeats = args
    set_threads(1)  # the start of a spawned worker
    learner = _learner(family, algo, device, options, inner_steps=steps)
    return {"inner_steps": steps, **meta_iteration_seconds(learner, repeats),
            "peak_memory_mib": peak_memory_mib()}


def inner_steps_scaling(
    family: str, algo: str, device: str, options: dict[str, Any], steps: Sequence[int],
    repeats: int,
) -> list[dict[str, Any]]:
    """Seconds per meta-iteration and peak memory for each number of inner steps, each
    measured in a fresh process so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for count in _progress(steps, "inner steps"):
        with context.Pool(1) as pool:
            rows.append(pool.apply(_inner_steps_figures,
                                   ((family, algo, device, options, count, repeats),)))
    return rows


def _learner(family: str, algo: str, device: str, settings: dict[str, Any],
             **sizes: int) -> Learner:
    config = resolve_settings({"family": family, "algo": algo, "device": device}, settings,
                              sizes)
    return build_learner(config, resolve_device(device))


def run_bench(
    family: str = "navigation2d",
    algo: str = "maml",
    device: str = "cpu",
    repeats: int = 5,
    algo_options: dict[str, Any] | None = None,
    scaling: bool = False,
    families: Sequence[str] = (),
    inner_steps: Sequence[int] = (),
) -> dict[str, Any]:
    """The reference figures for ``family`` and ``algo``; with ``scaling`` also the batch-size
    tables; for each of ``families`` the sampler and batched-vs-Gymnasium figures; for each
    of ``inner_steps`` the time and peak memory of a meta-iteration."""
    options = algo_options or {}
    learner = _learner(family, algo, device, options)
    config = learner.config
    iteration = meta_iteration_seconds(learner, repeats)
    result: dict[str, Any] = {
        "family": family,
        "algo": algo,
        "algo_options": options,
        "device": str(learner.device),
        "torch_threads": torch.get_num_threads(),
        "tasks": config.meta_batch_size,
        "episodes_per_task": config.episodes_per_task,
        "horizon": learner.family.max_episode_steps,
        **iteration,
        "peak_memory_mib": peak_memory_mib(),
    }
    if learner.device.type == "cuda":
        result["cuda_peak_memory_mib"] = torch.cuda.max_memory_allocated(learner.device) / 2**20
    if isinstance(learner, GradientLearner):
        sampler = sampler_throughput(learner, config.meta_batch_size,
                                     config.episodes_per_task, repeats)
        result["env_steps_per_second"] = sampler["env_steps_per_second"]
        result["env_steps_per_second_per_task_params"] = sampler[
            "env_steps_per_second_per_task_params"
        ]
    if scaling and isinstance(learner, GradientLearner):
        result["sampler_scaling"] = [
            sampler_throughput(learner, tasks, episodes, max(1, repeats // 2))
            for tasks, episodes in _progress(SCALING_SIZES, "sampler scaling")
        ]
        result["iteration_scaling"] = [
            {"tasks": tasks, **meta_iteration_seconds(
                _learner(family, algo, device, options, meta_batch_size=tasks),
                max(1, repeats // 2))}
            for tasks in _progress(ITERATION_TASKS, "iteration scaling")
        ]
    if inner_steps:
        result["inner_steps_scaling"] = inner_steps_scaling(
            family, algo, device, options, inner_steps, max(1, repeats // 2)
        )
    result["families"] = {
        name: {
            **sampler_throughput(_gradient_learner(name, device), config.meta_batch_size,
                                 config.episodes_per_task, repeats),
            "batched_vs_sync": batched_vs_sync(get_family(name), config.meta_batch_size,
                                               config.episodes_per_task, repeats),
        }
        for name in _progress(families, "families")
    }
    return result


def _gradient_learner(family: str, device: str) -> GradientLearner:
    """A MAML learner on ``family``: its sampler, for the family's sampler figures."""
    learner = _learner(family, "maml", device, {})
    assert isinstance(learner, GradientLearner)
    return learner


def learner_throughput(family: str, algos: Sequence[str], settings: dict[str, Any],
                       device: str, repeats: int) -> dict[str, Any]:
    """Training throughput of each of ``algos`` on ``family`` with the same ``settings``
    (each learner takes the ones it has: shared settings, and options such as
    ``trial_episodes`` that several learners share): the median seconds per iteration, its
    split into the learner's phases, and training env steps per second, updates included."""
    from metarl.run.settings import TRAINING_SETTINGS, option_names

    rows = {}
    for algo in _progress(algos, "learners"):
        known = set(TRAINING_SETTINGS) | set(option_names(algo))
        given = {key: value for key, value in settings.items() if key in known}
        learner = _learner(family, algo, device, given)
        rows[algo] = {"settings": given, **meta_iteration_seconds(learner, repeats)}
    return rows


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
    import ray  # an optional extra

    from metarl.rollout.ray_sampler import RaySampler

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(worker_counts), include_dashboard=False)
    try:
        policy = make_policy(family.observation_space, family.action_space)
        params = detach_params(policy.parameters_dict())
        tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
        steps = n_tasks * episodes * family.max_episode_steps
        cpu = torch.device("cpu")
        rows = []
        for cost in step_costs:
            costly = CostlyFamily(family, cost)
            local_s = _seconds_per_sample(Sampler(costly, policy, cpu), tasks, episodes, params,
                                          repeats)
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
