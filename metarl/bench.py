"""``metarl bench``: sampler throughput and seconds per meta-iteration, measured.

Figures are medians over repeats after a warm-up. The reference configuration is
Navigation2D, 20 tasks x 20 episodes, horizon 100, MAML-TRPO with one inner step; its figures
sit at the top level of the JSON (``env_steps_per_second``, ``seconds_per_iteration``).
"""

from __future__ import annotations

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

from metarl.checkpoint import build_learner, resolve_device
from metarl.config import TrainConfig
from metarl.family import TaskFamily
from metarl.learner import MetaLearner
from metarl.policy import per_task
from metarl.registry import get_family

SCALING_SIZES = ((20, 20), (50, 20), (100, 20), (200, 50))
"""(tasks, episodes per task) for the sampler's scaling table."""
ITERATION_TASKS = (10, 20, 40)
"""Meta-batch sizes for the meta-iteration scaling table (20 episodes each)."""


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    """Median time of ``run`` over at least ``repeats`` calls and ``0.2 * repeats`` seconds of
    calls (fast calls are repeated more: their medians are noisy on a shared machine)."""
    run()  # warm-up
    times: list[float] = []
    while len(times) < repeats or sum(times) < 0.2 * repeats:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sampler_throughput(
    learner: MetaLearner, n_tasks: int, episodes: int, repeats: int
) -> dict[str, float]:
    """Environment steps per second of the sampler with shared and with per-task parameters.

    Steps are counted as tasks x episodes x horizon (steps after termination are skipped by
    families that end early, so the figure is conservative).
    """
    tasks = learner.family.sample_tasks(n_tasks, np.random.default_rng(0))
    shared = learner.meta_params()
    grouped = per_task(shared, n_tasks)
    steps = n_tasks * episodes * learner.family.max_episode_steps
    shared_s = median_seconds(lambda: learner.sampler.sample(tasks, episodes, shared, 0), repeats)
    grouped_s = median_seconds(lambda: learner.sampler.sample(tasks, episodes, grouped, 0), repeats)
    return {
        "tasks": n_tasks,
        "episodes_per_task": episodes,
        "env_steps_per_second": steps / shared_s,
        "env_steps_per_second_per_task_params": steps / grouped_s,
    }


def batched_vs_sync(
    family: TaskFamily, n_tasks: int, episodes: int, repeats: int
) -> dict[str, float]:
    """Random-action steps per second: the family's batched env vs gymnasium's SyncVectorEnv."""
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    horizon = family.max_episode_steps
    batched = family.make_vector_env(tasks, episodes)
    sync = gym.vector.SyncVectorEnv(
        [lambda task=task: family.make_env(task) for task in tasks for _ in range(episodes)]
    )
    batched.action_space.seed(0)
    actions = [batched.action_space.sample() for _ in range(horizon)]

    def run(env: Any) -> None:
        env.reset(seed=0)
        for action in actions:
            env.step(action)

    steps = n_tasks * episodes * horizon
    batched_rate = steps / median_seconds(lambda: run(batched), repeats)
    sync_rate = steps / median_seconds(lambda: run(sync), max(1, repeats // 3))
    return {
        "batched_steps_per_second": batched_rate,
        "sync_vector_env_steps_per_second": sync_rate,
        "speedup": batched_rate / sync_rate,
    }


def meta_iteration_seconds(learner: MetaLearner, repeats: int) -> dict[str, float]:
    """Median seconds per meta-iteration and its split into sampling / inner / outer."""
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
    torch.set_num_threads(1)
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
    for count in tqdm(steps, desc="inner steps", leave=False):
        with context.Pool(1) as pool:
            rows.append(pool.apply(_inner_steps_figures,
                                   ((family, algo, device, options, count, repeats),)))
    return rows


def _learner(family: str, algo: str, device: str, algo_options: dict[str, Any],
             **sizes: int) -> MetaLearner:
    config = TrainConfig(family=family, algo=algo, device=device, algo_options=algo_options,
                         **sizes)
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
    sampler = sampler_throughput(learner, config.meta_batch_size, config.episodes_per_task,
                                 repeats)
    result["env_steps_per_second"] = sampler["env_steps_per_second"]
    result["env_steps_per_second_per_task_params"] = sampler[
        "env_steps_per_second_per_task_params"
    ]
    if scaling:
        result["sampler_scaling"] = [
            sampler_throughput(learner, tasks, episodes, max(1, repeats // 2))
            for tasks, episodes in tqdm(SCALING_SIZES, desc="sampler scaling", leave=False)
        ]
        result["iteration_scaling"] = [
            {"tasks": tasks, **meta_iteration_seconds(
                _learner(family, algo, device, options, meta_batch_size=tasks),
                max(1, repeats // 2))}
            for tasks in tqdm(ITERATION_TASKS, desc="iteration scaling", leave=False)
        ]
    if inner_steps:
        result["inner_steps_scaling"] = inner_steps_scaling(
            family, algo, device, options, inner_steps, max(1, repeats // 2)
        )
    result["families"] = {
        name: {
            **sampler_throughput(_learner(name, algo, device, options), config.meta_batch_size,
                                 config.episodes_per_task, repeats),
            "batched_vs_sync": batched_vs_sync(get_family(name), config.meta_batch_size,
                                               config.episodes_per_task, repeats),
        }
        for name in tqdm(families, desc="families", leave=False)
    }
    return result
