"""Speed of the MuJoCo locomotion families: how the batch is stepped, and batched vs Gymnasium.

    python scripts/bench_locomotion.py --family halfcheetah-vel --out bench.json

Three measurements, each one episode of 200 steps from the family's reset states, with
random actions drawn beforehand (so only stepping is timed):

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
import platform
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

import envs.locomotion  # noqa: F401  (registers the families)
from envs.locomotion.base import LocomotionFamily
from metarl.episodes import Sampler
from metarl.family import TaskFamily
from metarl.policy import make_policy
from metarl.registry import get_family
from metarl.rng import BatchRNG

GYMNASIUM_ID = {"halfcheetah": "HalfCheetah-v5", "ant": "Ant-v5"}


def timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def physics_rates(family: LocomotionFamily, batch: int, threads: tuple[int, ...]
                  ) -> dict[str, Any]:
    """Env steps per second of the physics alone: MjData loop vs mujoco.rollout."""
    horizon = family.max_episode_steps
    start = family.initial_state({}, BatchRNG.from_seed(0, batch))["physics"]
    model = family.physics.model
    nu, frame_skip = model.nu, family.physics.frame_skip
    controls = np.random.default_rng(0).uniform(-1, 1, size=(horizon, batch, nu))
    result: dict[str, Any] = {"batch": batch}
    exact = None
    for count in threads:
        physics = type(family)(threads=count).physics

        def loop(physics: Any = physics) -> None:
            nonlocal exact
            state = start
            for ctrl in controls:
                state = physics.step(state, ctrl)["physics"]
            exact = state

        result[f"mjdata_loop_{count}_threads"] = batch * horizon / timed(loop)
        physics.close()
    # rollout's state is mjSTATE_FULLPHYSICS: time, qpos, qvel (no warm start)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    size = mujoco.mj_stateSize(model, spec)
    full = np.empty((batch, size))
    data = mujoco.MjData(model)
    for i in range(batch):
        data.qpos[:], data.qvel[:] = family.physics.qpos(start)[i], family.physics.qvel(start)[i]
        mujoco.mj_getState(model, data, full[i], spec)
    repeated = np.repeat(controls[:, :, None, :], frame_skip, axis=2)
    last = None
    for count in threads:
        datas = [mujoco.MjData(model) for _ in range(count)]
        out = np.empty((batch, frame_skip, size))
        sensors = np.empty((batch, frame_skip, model.nsensordata))
        with rollout.Rollout(nthread=0 if count == 1 else count) as pool:

            def run(pool: Any = pool, datas: list[Any] = datas, out: np.ndarray = out,
                    sensors: np.ndarray = sensors) -> None:
                nonlocal last
                state = full.copy()
                for ctrl in repeated:
                    pool.rollout(model, datas, state, ctrl, nstep=frame_skip, state=out,
                                 sensordata=sensors)
                    state[:] = out[:, -1]
                last = state

            result[f"rollout_{count}_threads"] = batch * horizon / timed(run)
    nq, nv = model.nq, model.nv
    difference = np.abs(last[:, 1 : 1 + nq + nv] - exact[:, : nq + nv])
    result["rollout_vs_exact_after_200_steps"] = {
        "max_abs_difference": float(difference.max()),
        "median_column_max_abs_difference": float(np.median(difference.max(axis=1))),
    }
    return result


def env_rates(family: LocomotionFamily, n_tasks: int, episodes: int,
              threads: tuple[int, ...]) -> dict[str, Any]:
    """Random-action steps per second: batched env vs SyncVectorEnv (ours and Gymnasium's)."""
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    horizon = family.max_episode_steps
    n = n_tasks * episodes
    space = gym.vector.utils.batch_space(family.action_space, n)
    space.seed(0)
    actions = [space.sample() for _ in range(horizon)]

    def run(env: Any) -> float:
        env.reset(seed=0)
        seconds = timed(lambda: [env.step(action) for action in actions])
        env.close()
        return n * horizon / seconds

    result: dict[str, Any] = {"tasks": n_tasks, "episodes_per_task": episodes}
    for count in threads:
        batched = type(family)(threads=count).make_vector_env(tasks, episodes)
        result[f"batched_{count}_threads"] = run(batched)
    result["sync_vector_env"] = run(gym.vector.SyncVectorEnv(
        [lambda task=task: family.make_env(task) for task in tasks for _ in range(episodes)]
    ))
    robot = family.name.split("-")[0]
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)  # a deprecation notice per v5 env
    try:
        reference = gym.vector.SyncVectorEnv(
            [lambda: gym.make(GYMNASIUM_ID[robot], max_episode_steps=horizon)] * n
        )
    finally:
        mujoco.set_mju_user_warning(previous)
    result["sync_vector_env_gymnasium_v5"] = run(reference)
    result["speedup"] = {
        key: result[key] / result["sync_vector_env"] for key in result if key.startswith("batched")
    }
    return result


def sampler_rates(family: LocomotionFamily, n_tasks: int, episodes: int) -> dict[str, Any]:
    """Steps per second of the project's sampler ([64, 64] policy) on both envs."""
    tasks = family.sample_tasks(n_tasks, np.random.default_rng(0))
    policy = make_policy(family.observation_space, family.action_space, (64, 64), "tanh")
    params = policy.parameters_dict()
    steps = n_tasks * episodes * family.max_episode_steps

    # Gymnasium's SyncVectorEnv refuses to step an env that has terminated without autoreset,
    # so the sampler runs on the project's generic fallback over the same single envs.
    over_sync = SimpleNamespace(
        max_episode_steps=family.max_episode_steps,
        make_vector_env=lambda tasks, episodes: TaskFamily.make_vector_env(family, tasks,
                                                                           episodes),
    )
    result: dict[str, Any] = {"tasks": n_tasks, "episodes_per_task": episodes}
    for name, target in (("batched", family), ("sync_fallback", over_sync)):
        sampler = Sampler(target, policy, torch.device("cpu"))  # type: ignore[arg-type]
        batch: Any = None

        def sample(sampler: Sampler = sampler) -> None:
            nonlocal batch
            batch = sampler.sample(tasks, episodes, params, seed=0)

        result[name] = steps / timed(sample)
        result[f"{name}_valid_steps"] = int(batch.mask.sum())
    result["speedup"] = result["batched"] / result["sync_fallback"]
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
        "cpu_cores": __import__("os").cpu_count(), "python": platform.python_version(),
    }
    if "physics" in args.parts:
        result["physics"] = [physics_rates(family, b, threads) for b in args.physics_batch]
        print(json.dumps(result["physics"], indent=1))
    if "envs" in args.parts:
        result["envs"] = [env_rates(family, t, e, threads) for t, e in sizes]
        print(json.dumps(result["envs"], indent=1))
    if "sampler" in args.parts:
        result["sampler"] = [sampler_rates(family, t, e) for t, e in sampler_sizes]
        print(json.dumps(result["sampler"], indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
