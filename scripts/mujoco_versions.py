"""The locomotion families under two MuJoCo versions: speed and how far trajectories move.

Run it once in each environment, then compare the two files:

    .venv/bin/python scripts/mujoco_versions.py --out runs/mujoco-4.json
    .venv-mw/bin/python scripts/mujoco_versions.py --out runs/mujoco-3.3.json
    python scripts/mujoco_versions.py --compare runs/mujoco-4.json runs/mujoco-3.3.json

For each family: the batched env's random-action steps per second (20 tasks x 20 episodes,
one thread, every one of ``--rounds`` runs kept), and the returns of ``--episodes`` episodes
(the first held-out tasks, one episode each, reset seed 0) under two action sequences drawn
beforehand: uniform random actions in the box from a seeded generator, and a fixed gait
(``0.6 sin(2 pi t / 20 + joint)``). The first episode's observations at a few steps are kept,
so the comparison can say when the versions part. Torch is not used.

On a shared machine, time the two environments in turn, a few rounds each, and compare the
best rates (``--parts speed``, appended to one file per environment with ``--append``).
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

import metarl.envs.locomotion  # noqa: F401  (registers the families)
from metarl.registry import get_family

FAMILIES = ("halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal")
KEPT_STEPS = (1, 10, 50, 100, 200)


def episode_returns(family: Any, actions: np.ndarray) -> dict[str, Any]:
    """Returns of one episode on each of the first held-out tasks (batched, seed 0)."""
    episodes = actions.shape[1]
    env = family.make_vector_env(family.test_tasks(episodes), 1)
    env.reset(seed=0)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=int)
    alive = np.ones(episodes, dtype=bool)
    kept = {}
    for t, action in enumerate(actions, start=1):
        obs, reward, terminated, _, _ = env.step(action)
        returns += np.where(alive, reward, 0.0)
        lengths += alive
        alive &= ~terminated
        if t in KEPT_STEPS:
            kept[str(t)] = obs[0].tolist()
    return {"returns": returns.tolist(), "lengths": lengths.tolist(), "first_episode_obs": kept}


def steps_per_second(family: Any, rounds: int) -> dict[str, float]:
    tasks = family.sample_tasks(20, np.random.default_rng(0))
    env = family.make_vector_env(tasks, 20)
    space = gym.vector.utils.batch_space(family.action_space, env.num_envs)
    space.seed(0)
    actions = [space.sample() for _ in range(family.max_episode_steps)]
    rates = []
    for _ in range(rounds):
        env.reset(seed=0)
        ended = np.zeros(env.num_envs, dtype=bool)
        simulated = 0
        start = time.perf_counter()
        for action in actions:
            simulated += int(np.count_nonzero(~ended))
            ended |= env.step(action)[2]
        rates.append(simulated / (time.perf_counter() - start))
    return {"median": statistics.median(rates), "best": max(rates), "all": rates}


def measure(families: list[str], parts: list[str], rounds: int, episodes: int
            ) -> dict[str, Any]:
    result: dict[str, Any] = {
        "mujoco": mujoco.__version__, "gymnasium": gym.__version__,
        "python": platform.python_version(), "load_average_at_start": os.getloadavg(),
        "families": {},
    }
    for name in families:
        family = get_family(name)
        horizon, shape = family.max_episode_steps, family.action_space.shape
        figures = result["families"][name] = {}
        if "returns" in parts:
            rng = np.random.default_rng(0)
            random_actions = rng.uniform(-1, 1, size=(horizon, episodes, *shape))
            t = np.arange(horizon)[:, None, None]
            joint = np.arange(shape[0])[None, None, :]
            gait = np.broadcast_to(0.6 * np.sin(2 * np.pi * t / 20 + joint),
                                   (horizon, episodes, *shape))
            figures["random_actions"] = episode_returns(family, random_actions)
            figures["fixed_gait"] = episode_returns(family, gait)
        if "speed" in parts:
            figures["batched_steps_per_second_20x20"] = steps_per_second(family, rounds)
        print(name, "done", flush=True)
    result["load_average_at_end"] = os.getloadavg()
    return result


def _ci(values: np.ndarray) -> str:
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    return f"{values.mean():.1f} ± {half:.1f}"


def _rates(figures: dict[str, Any]) -> list[float]:
    return figures.get("batched_steps_per_second_20x20", {}).get("all", [])


def compare(a_path: Path, b_path: Path) -> None:
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    print(f"MuJoCo {a['mujoco']} (A) vs {b['mujoco']} (B)\n")
    print("| family | steps/s A: best, median (runs) | steps/s B: best, median (runs) "
          "| best B/A |")
    print("|---|---:|---:|---:|")
    for name in a["families"]:
        rate_a, rate_b = _rates(a["families"][name]), _rates(b["families"].get(name, {}))
        if rate_a and rate_b:
            print(f"| {name} | {max(rate_a):,.0f}, {statistics.median(rate_a):,.0f} "
                  f"({len(rate_a)}) | {max(rate_b):,.0f}, {statistics.median(rate_b):,.0f} "
                  f"({len(rate_b)}) | {max(rate_b) / max(rate_a):.2f} |")
    print("\n| family | actions | episodes | mean return A (95% CI) | B | mean abs. "
          "difference per episode | max | first-episode obs difference at steps "
          + ", ".join(map(str, KEPT_STEPS)) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name in a["families"]:
        fa, fb = a["families"][name], b["families"].get(name, {})
        for kind in ("random_actions", "fixed_gait"):
            if kind not in fa or kind not in fb:
                continue
            ra, rb = np.array(fa[kind]["returns"]), np.array(fb[kind]["returns"])
            diffs = []
            for step in map(str, KEPT_STEPS):
                oa = fa[kind]["first_episode_obs"].get(step)
                ob = fb[kind]["first_episode_obs"].get(step)
                diffs.append("-" if oa is None or ob is None
                             else f"{np.abs(np.array(oa) - np.array(ob)).max():.1e}")
            print(f"| {name} | {kind.replace('_', ' ')} | {len(ra)} | {_ci(ra)} | {_ci(rb)} "
                  f"| {np.abs(ra - rb).mean():.1f} | {np.abs(ra - rb).max():.1f} "
                  f"| {', '.join(diffs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write this environment's figures here")
    parser.add_argument("--append", action="store_true",
                        help="add the speed runs to those already in --out")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--parts", nargs="+", default=["returns", "speed"],
                        choices=["returns", "speed"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    result = measure(args.families.split(","), args.parts, args.rounds, args.episodes)
    if args.append and args.out and args.out.exists():
        previous = json.loads(args.out.read_text())
        for name, figures in result["families"].items():
            kept = previous["families"].setdefault(name, {})
            if "batched_steps_per_second_20x20" in figures:
                runs = kept.setdefault("batched_steps_per_second_20x20", {"all": []})
                runs["all"] += figures["batched_steps_per_second_20x20"]["all"]
            kept.update({k: v for k, v in figures.items()
                         if k != "batched_steps_per_second_20x20"})
        result = previous
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
