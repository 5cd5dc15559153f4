"""Speed of the MuJoCo locomotion families: how the batch is stepped, and batched vs Gymnasium.

    python scripts/bench_locomotion.py --family halfcheetah-vel --out bench.json

Three measurements, each one episode of 200 steps from the family's reset states, with
random actions drawn beforehand (so only stepping is timed). Rates count simulated steps:
a column whose episode has ended is not simulated any more (the ant's do end early).

- ``physics``: the physics alone, B states stepped by the family's MjData loop
  (:class:`envs.locomotion.physics.BatchPhysics`) and by ``mujoco.rollout`` (one call of
  ``frame_skip`` steps per env step), each with 1 and 2 threads; also how far rollout's
  trajectory ends from the exact one (rollout restarts the solver's warm start at each call);
- ``envs``: the family's batched env vs Gymnasium's ``SyncVectorEnv`` over the family's
  single envs, and over Gymnasium's own v5 envs, at tasks x episodes sizes;
- ``sampler``: the project's sampler with a [64, 64] Gaussian policy on the batched env vs
  the same sampler on the generic fallback that steps the single envs one after another.
Torch runs with one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

import metarl.envs.locomotion  # noqa: F401  (registers the families)
from metarl.envs.locomotion.base import LocomotionFamily
from metarl.family.base import TaskFamily
from metarl.family.rng import BatchRNG
from metarl.policies.mlp import make_policy
from metarl.registry import get_family
from metarl.rollout.sampler import Sampler

GYMNASIUM_ID = {"halfcheetah": "HalfCheetah-v5", "ant": "Ant-v5"}


def timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(runners: dict[str, Callable[[], float]], rounds: int) -> dict[str, Any]:
    """Each runner (returning steps per second) once per round, in turn, so that every one
    meets the same machine load; the median and the best over rounds."""
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            rates[name].append(runner())
    return {name: {"median": statistics.median(values), "best": max(values), "all": values}
            for name, values in rates.items()}


def physics_rates(family: LocomotionFamily, batch: int, threads: tuple[int, ...],
                  rounds: int) -> dict[str, Any]:
    """Env steps per second of the physics alone: MjData loop vs mujoco.rollout."""
    horizon = family.max_episode_steps
    start = family.initial_state({}, BatchRNG.from_seed(0, batch))["physics"]
    model = family.physics.model
    frame_skip = family.physics.frame_skip
    controls = np.random.default_rng(0).uniform(-1, 1, size=(horizon, batch, model.nu))
    finals: dict[str, np.ndarray] = {}
    runners: dict[str, Callable[[], float]] = {}
    for count in threads:
        physics = type(family)(threads=count).physics

        def loop(physics: Any = physics) -> float:
            def episode() -> None:
                state = start
                for ctrl in controls:
                    state = physics.step(state, ctrl)["physics"]
                finals["exact"] = state

            return batch * horizon / timed(episode)

        runners[f"mjdata_loop_{count}_threads"] = loop
    # rollout's state is mjSTATE_FULLPHYSICS: time, qpos, qvel (no warm start)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    size = mujoco.mj_stateSize(model, spec)
    full = np.empty((batch, size))
    data = mujoco.MjData(model)
    for i in range(batch):
        data.qpos[:], data.qvel[:] = family.physics.qpos(start)[i], family.physics.qvel(start)[i]
        mujoco.mj_getState(model, data, full[i], spec)
    repeated = np.repeat(controls[:, :, None, :], frame_skip, axis=2)
    pools = []
    for count in threads:
        pool = rollout.Rollout(nthread=0 if count == 1 else count)
        pools.append(pool)
        datas = [mujoco.MjData(model) for _ in range(count)]

        def roll(pool: Any = pool, datas: list[Any] = datas) -> float:
            out = np.empty((batch, frame_skip, size))
            sensors = np.empty((batch, frame_skip, model.nsensordata))

            def episode() -> None:
                state = full.copy()
                for ctrl in repeated:
                    pool.rollout(model, datas, state, ctrl, nstep=frame_skip, state=out,
                                 sensordata=sensors)
                    state[:] = out[:, -1]
                finals["rollout"] = state

            return batch * horizon / timed(episode)

        runners[f"rollout_{count}_threads"] = roll
    result: dict[str, Any] = {"batch": batch, **interleaved(runners, rounds)}
    for pool in pools:
        pool.close()
    nq, nv = model.nq, model.nv
    difference = np.abs(finals["rollout"][:, 1 : 1 + nq + nv] - finals["exact"][:, : nq + nv])
    result["rollout_vs_exact_after_200_steps"] = {
        "max_abs_difference": float(difference.max()),
        "median_column_max_abs_difference": float(np.median(difference.max(axis=1))),
    }
    return result


def env_rates(family: LocomotionFamily, n_tasks: int, episodes: int,
              threads: tuple[int, ...], rounds: int) -> dict[str, Any]:
    """Random-action steps per second: batched env vs SyncVectorEnv (ours and Gymnasium's)."""
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    horizon = family.max_episode_steps
    n = n_tasks * episodes
    space = gym.vector.utils.batch_space(family.action_space, n)
    space.seed(0)
    actions = [space.sample() for _ in range(horizon)]

    def rate(env: Any) -> Callable[[], float]:
        def run() -> float:
            """Simulated steps per second: a column is not simulated on the step after it
            ended (the batched env skips it, SyncVectorEnv resets it instead)."""
            env.reset(seed=0)
            simulated = 0
            ended = np.zeros(n, dtype=bool)
            start = time.perf_counter()
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                simulated += n - int(ended.sum())
                ended = terminated | truncated
            return simulated / (time.perf_counter() - start)

        return run

    runners = {
        f"batched_{count}_threads": rate(type(family)(threads=count).make_vector_env(tasks,
                                                                                  episodes))
        for count in threads
    }
    runners["sync_vector_env"] = rate(gym.vector.SyncVectorEnv(
        [lambda task=task: family.make_env(task) for task in tasks for _ in range(episodes)]
    ))
    robot = family.name.split("-")[0]
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)  # a deprecation notice per v5 env
    try:
        runners["sync_vector_env_gymnasium_v5"] = rate(gym.vector.SyncVectorEnv(
            [lambda: gym.make(GYMNASIUM_ID[robot], max_episode_steps=horizon)] * n
        ))
    finally:
        mujoco.set_mju_user_warning(previous)
    result: dict[str, Any] = {"tasks": n_tasks, "episodes_per_task": episodes,
                              **interleaved(runners, rounds)}
    result["speedup_median"] = {
        key: result[key]["median"] / result["sync_vector_env"]["median"]
        for key in runners if key.startswith("batched")
    }
    return result


def sampler_rates(family: LocomotionFamily, n_tasks: int, episodes: int, rounds: int
                  ) -> dict[str, Any]:
    """Steps per second of the project's sampler ([64, 64] policy) on both envs (steps before
    termination; the sampler stops early once every column has ended)."""
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    policy = make_policy(family.observation_space, family.action_space, (64, 64), "tanh")
    params = policy.parameters_dict()
    # Gymnasium's SyncVectorEnv refuses to step an env that has terminated without autoreset,
    # so the sampler runs on the project's generic fallback over the same single envs.
    over_sync = SimpleNamespace(
        max_episode_steps=family.max_episode_steps,
        make_vector_env=lambda tasks, episodes: TaskFamily.make_vector_env(family, tasks,
                                                                           episodes),
    )
    valid: dict[str, int] = {}

    def rate(name: str, target: Any) -> Callable[[], float]:
        sampler = Sampler(target, policy, torch.device("cpu"))

        def run() -> float:
            start = time.perf_counter()
            batch = sampler.sample(tasks, episodes, params, seed=0)
            seconds = time.perf_counter() - start
            valid[name] = int(batch.mask.sum())
            return valid[name] / seconds

        return run

    runners = {"batched": rate("batched", family), "sync_fallback": rate("sync", over_sync)}
    result: dict[str, Any] = {"tasks": n_tasks, "episodes_per_task": episodes,
                              **interleaved(runners, rounds)}
    result["valid_steps"] = valid
    result["speedup_median"] = result["batched"]["median"] / result["sync_fallback"]["median"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="halfcheetah-vel")
    parser.add_argument("--parts", nargs="+", default=["physics", "envs", "sampler"],
                        choices=["physics", "envs", "sampler"])
    parser.add_argument("--physics-batch", type=int, nargs="+", default=[400])
    parser.add_argument("--sizes", nargs="+", default=["20x20", "40x20"],
                        help="tasks x episodes per task")
    parser.add_argument("--sampler-sizes", nargs="+", default=["20x20"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved repeats of every measurement")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = get_family(args.family)
    threads = tuple(args.threads)
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    sampler_sizes = [tuple(int(v) for v in size.split("x")) for size in args.sampler_sizes]
    result: dict[str, Any] = {
        "family": args.family, "horizon": family.max_episode_steps,
        "mujoco": mujoco.__version__, "gymnasium": gym.__version__,
        "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "rounds": args.rounds, "load_average_at_start": os.getloadavg(),
    }

    def save() -> None:  # after every part, so that a long run keeps what it measured
        result["load_average_at_end"] = os.getloadavg()
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    if "physics" in args.parts:
        result["physics"] = []
        for batch in args.physics_batch:
            result["physics"].append(physics_rates(family, batch, threads, args.rounds))
            save()
    if "envs" in args.parts:
        result["envs"] = []
        for n_tasks, episodes in sizes:
            result["envs"].append(env_rates(family, n_tasks, episodes, threads, args.rounds))
            save()
    if "sampler" in args.parts:
        result["sampler"] = []
        for n_tasks, episodes in sampler_sizes:
            result["sampler"].append(sampler_rates(family, n_tasks, episodes, args.rounds))
            save()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
