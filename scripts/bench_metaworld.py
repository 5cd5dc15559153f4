"""Steps per second of the Meta-World families' batched envs (run in .venv-mw).

    .venv-mw/bin/python scripts/bench_metaworld.py --families ml1-reach,ml1-pick-place \
        --out docs/results/metaworld/bench.json

For each family, ``--tasks`` x ``--episodes`` columns stepped for one whole episode (500 steps)
with uniform random actions drawn beforehand, by:

- ``parallel``: the family's batched env, columns stepped by ``--workers`` worker processes
  (:class:`metarl.family.parallel.ParallelBatchedEnv`);
- ``sync``: the family's batched env with one worker, stepped in this process
  (:class:`metarl.family.vector.SyncBatchedEnv`);
- ``sync_vector_env``: Gymnasium's ``SyncVectorEnv`` over the family's single envs.

The first parallel env of a run also builds the workers' simulators (about half a second
each); that time is reported apart (``first_build_seconds``), and every timed run reuses the
simulators, as a sampler does from its second rollout on. Rates are the median of
``--rounds`` runs taken in turn, with the best; each run also records the CPU time it took,
this process's and the workers' together, per step (on shared cores the wall-clock rate of
the workers, which wait for each other at every step, depends on what else runs; the CPU
time per step says what the processes cost). Torch is not used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

import metarl
from metarl.family.parallel import available_cores


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(env: Any, actions: np.ndarray) -> tuple[float, float]:
    """Steps per second, and CPU milliseconds per step of this process and the env's
    workers together."""
    env.reset(seed=0)
    pids = [os.getpid(), *(p.pid for p in getattr(getattr(env, "pool", None),
                                                  "_processes", []))]
    cpu = [cpu_seconds(pid) for pid in pids]
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    seconds = time.perf_counter() - start
    steps = actions.shape[0] * actions.shape[1]
    used = sum(cpu_seconds(pid) - before for pid, before in zip(pids, cpu))
    return steps / seconds, 1000 * used / steps


def bench(name: str, n_tasks: int, episodes: int, workers: int, rounds: int) -> dict[str, Any]:
    family = metarl.get_family(name)
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    columns = n_tasks * episodes
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(family.max_episode_steps, columns, 4)).astype(np.float32)
    parallel_family = type(family)(family.env, workers=workers)
    sync_family = type(family)(family.env, workers=1)
    start = time.perf_counter()
    parallel_family.make_vector_env(tasks, episodes).close()  # builds the simulators
    first_build = time.perf_counter() - start
    builders = {  # each built, timed and closed in turn: closed envs' simulators are reused
        "parallel": lambda: parallel_family.make_vector_env(tasks, episodes),
        "sync": lambda: sync_family.make_vector_env(tasks, episodes),
        "sync_vector_env": lambda: gym.vector.SyncVectorEnv(
            [lambda task=task: family.make_env(task) for task in tasks for _ in range(episodes)]
        ),
    }
    rates: dict[str, list[float]] = {key: [] for key in builders}
    cpu: dict[str, list[float]] = {key: [] for key in builders}
    for _ in range(rounds):
        for key, build in builders.items():
            env = build()
            steps_per_second, cpu_ms = rate(env, actions)
            rates[key].append(steps_per_second)
            cpu[key].append(cpu_ms)
            env.close()
            print(f"{name} {key}: {steps_per_second:,.0f} steps/s, {cpu_ms:.3f} CPU ms per "
                  f"step, load {os.getloadavg()[0]:.1f}", flush=True)
    result: dict[str, Any] = {
        "tasks": n_tasks, "episodes_per_task": episodes, "steps_per_run": actions.shape[0]
        * columns, "workers": workers, "first_build_seconds": first_build,
    }
    for key, values in rates.items():
        result[key] = {"median": statistics.median(values), "best": max(values), "all": values,
                       "cpu_ms_per_step": cpu[key]}
    result["parallel_over_sync_vector_env"] = (
        result["parallel"]["median"] / result["sync_vector_env"]["median"])
    result["parallel_over_sync"] = result["parallel"]["median"] / result["sync"]["median"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="ml1-reach,ml1-pick-place")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "mujoco": mujoco.__version__, "python": platform.python_version(),
        "usable_cores": available_cores(), "load_average_at_start": os.getloadavg(),
        "families": {},
    }
    for name in args.families.split(","):
        result["families"][name] = bench(name, args.tasks, args.episodes, args.workers,
                                         args.rounds)
        result["load_average_at_end"] = os.getloadavg()
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
