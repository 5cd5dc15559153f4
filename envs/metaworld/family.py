"""Meta-World's meta-learning benchmarks as task families: ``ml1-<env>``, ``ml10``, ``ml45``.

A Meta-World benchmark built with a seed draws 50 goals for each of its environments in each
split (``metaworld.ML1(env, seed)``, ``ML10(seed)``, ``ML45(seed)``). A task here names one
of them, :class:`MetaWorldTask` (benchmark, environment, split, goal index, seed), and
rebuilds the same goal: Meta-World's own task objects (pickled data) stay inside the process
and never enter a task's JSON. Goals are built once per process and split and kept; the
splits are built the way Meta-World's benchmark classes build them, one split at a time (ML45's
test split takes seconds, its training split a minute).

Splits: :meth:`MetaWorldFamily.sample_tasks` draws from the benchmark's training goals,
:meth:`MetaWorldFamily.test_tasks` from its test goals (ML1: the environment's other 50
goals; ML10 and ML45: the 50 goals of each of the 5 held-out environments).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import metaworld
import numpy as np
from metaworld import env_dict
from metaworld.sawyer_xyz_env import SawyerXYZEnv

from metarl.envs.metaworld.env import MetaWorldEnv
from metarl.envs.metaworld.names import ML1_ENVS, ml1_env_id, ml1_name
from metarl.family.base import TaskFamily
from metarl.family.parallel import ParallelBatchedEnv, available_cores
from metarl.family.vector import BatchedEnv, SyncBatchedEnv

GOALS = 50
"""Goals Meta-World draws per environment and split."""
HORIZON = 500
"""Meta-World's episode length (``max_path_length``)."""
BENCHMARKS = ("ML1", "ML10", "ML45")
SPLITS = ("train", "test")
_HELD_OUT_STREAM = 0x7E57
WORKERS_VARIABLE = "METARL_ENV_WORKERS"
"""Environment variable: worker processes of the batched envs (default: the usable cores)."""

Resolved = tuple[type, Any]
"""An environment class and Meta-World's task object for one goal."""


def split_envs(benchmark: str, split: str, env: str | None = None) -> tuple[str, ...]:
    """The environments of a benchmark's split (ML1: ``env`` in both)."""
    if benchmark == "ML1":
        return (env,) if env is not None else ()
    return tuple(_classes(benchmark, split))


def _classes(benchmark: str, split: str) -> dict[str, type]:
    table = {"ML10": env_dict.ML10_V3, "ML45": env_dict.ML45_V3}[benchmark]
    return dict(table[split])


@dataclass(frozen=True)
class MetaWorldTask:
    """Goal ``goal`` (0-49) of environment ``env`` (e.g. ``"reach-v3"``) in the ``split``
    (``"train"`` or ``"test"``) of Meta-World benchmark ``benchmark`` (``"ML1"``, ``"ML10"``
    or ``"ML45"``) built with ``seed``."""

    benchmark: str
    env: str
    split: str
    goal: int
    seed: int

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {list(BENCHMARKS)}, got "
                             f"{self.benchmark!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        allowed = ML1_ENVS if self.benchmark == "ML1" else split_envs(self.benchmark,
                                                                       self.split)
        if self.env not in allowed:
            raise ValueError(f"env {self.env!r} is not in {self.benchmark}'s {self.split} "
                             f"split: choose from {list(allowed)}")
        for name, value, high in (("goal", self.goal, GOALS), ("seed", self.seed, 2**32)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < high:
                raise ValueError(f"{name} must be an int in [0, {high}), got {value!r}")


@functools.cache
def split_goals(benchmark: str, split: str, seed: int, env: str | None = None
                ) -> dict[str, list[Any]]:
    """Meta-World's task objects of one split, ``GOALS`` per environment, by environment:
    exactly those of ``metaworld.ML1(env, seed)``, ``ML10(seed)`` or ``ML45(seed)`` (their
    ``train_tasks`` or ``test_tasks``), built alone. ML1 draws its test goals with
    ``seed + 1``, as Meta-World does."""
    classes: dict[Any, Any]
    if benchmark == "ML1":
        classes = {env: env_dict.ALL_V3_ENVIRONMENTS[env]}
        arguments = {env: env_dict.ML1_ARGS_KWARGS[env]}
        seed = seed + (split == "test")
    else:
        table = {"ML10": env_dict.ML10_ARGS_KWARGS, "ML45": env_dict.ML45_ARGS_KWARGS}
        classes = _classes(benchmark, split)
        arguments = table[benchmark][split]
    tasks = metaworld._make_tasks(classes, arguments, metaworld._ML_OVERRIDE, seed=seed)
    goals: dict[str, list[Any]] = {name: [] for name in classes}
    for task in tasks:
        goals[task.env_name].append(task)
    return goals


def observation_space() -> gym.spaces.Box:
    """Meta-World's observation space with the goal hidden: the hand within its hand space,
    the gripper opening in [-1, 1], objects unbounded, for now and the previous step, then
    the goal, always zero (``SawyerXYZEnv.sawyer_observation_space`` of the ML benchmarks)."""
    hand = SawyerXYZEnv._HAND_SPACE
    objects = np.full(14, np.inf)
    low = np.hstack([hand.low, -1.0, -objects, hand.low, -1.0, -objects, np.zeros(3)])
    high = np.hstack([hand.high, 1.0, objects, hand.high, 1.0, objects, np.zeros(3)])
    return gym.spaces.Box(low, high, dtype=np.float64)


def default_workers() -> int:
    """Worker processes for batched envs: ``$METARL_ENV_WORKERS``, else the usable cores."""
    value = os.environ.get(WORKERS_VARIABLE)
    if value is None:
        return available_cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_VARIABLE} must be a positive integer, got {value!r}")
    return int(value)


def _column_env(family: MetaWorldFamily, task: MetaWorldTask, resolved: Resolved) -> gym.Env:
    """One column of a parallel batched env, built in a worker: ``family.make_env(task)``
    with the goal resolved in the parent (the worker never builds a benchmark)."""
    env = MetaWorldEnv(family, task, resolved=resolved)
    return gym.wrappers.TimeLimit(env, max_episode_steps=family.max_episode_steps)


class MetaWorldFamily(TaskFamily):
    """A Meta-World benchmark as a task family (see the module docstring).

    ``seed`` is the benchmark's seed (the goals Meta-World draws); ``workers`` the processes
    that step a batched env (default :func:`default_workers`; 1 steps it in this process).
    """

    benchmark: ClassVar[str]
    task_type = MetaWorldTask
    max_episode_steps = HORIZON
    observation_space = observation_space()
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    success_key = "success"

    def __init__(self, seed: int = 0, workers: int | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ValueError(f"workers must be a positive int or None, got {workers!r}")
        self.seed = seed
        self.workers = workers

    # --- tasks -------------------------------------------------------------------------------
    def envs(self, split: str) -> tuple[str, ...]:
        """The environments of a split."""
        return split_envs(self.benchmark, split)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
        """``n`` training goals, each environment and goal uniform (with replacement)."""
        envs = self.envs("train")
        picks = rng.integers(len(envs), size=n)
        goals = rng.integers(GOALS, size=n)
        return [MetaWorldTask(self.benchmark, envs[e], "train", int(g), self.seed)
                for e, g in zip(picks, goals)]

    def test_tasks(self, n: int, seed: int = 0, split: str = "test") -> list[MetaWorldTask]:
        """``n`` test goals, a fixed function of ``seed``: the environments in turn (in a
        seeded order), each's 50 goals in a seeded order, so that the first ``50 x envs``
        tasks are distinct and every environment is equally represented; past that the
        sequence repeats."""
        self.check_split(split)
        rng = np.random.default_rng([_HELD_OUT_STREAM, seed])
        envs = [self.envs("test")[i] for i in rng.permutation(len(self.envs("test")))]
        orders = [rng.permutation(GOALS) for _ in envs]
        cycle = [MetaWorldTask(self.benchmark, env, "test", int(order[k]), self.seed)
                 for k in range(GOALS) for env, order in zip(envs, orders)]
        return [cycle[i % len(cycle)] for i in range(n)]

    def coerce_task(self, task: Any) -> MetaWorldTask:
        task = super().coerce_task(task)
        if task.benchmark != self.benchmark or task.env not in self.envs(task.split):
            raise ValueError(f"{task!r} is not a task of family {self.name!r} (benchmark "
                             f"{self.benchmark}, environments {list(self.envs(task.split))})")
        return task

    def resolve(self, task: MetaWorldTask) -> Resolved:
        """The environment class and Meta-World's task object for ``task``'s goal."""
        goals = split_goals(task.benchmark, task.split, task.seed,
                            task.env if task.benchmark == "ML1" else None)
        meta_world_task = goals[task.env][task.goal]
        return env_dict.ALL_V3_ENVIRONMENTS[task.env], meta_world_task

    # --- envs --------------------------------------------------------------------------------
    def make_base_env(self, task: Any, render_mode: str | None = None) -> MetaWorldEnv:
        return MetaWorldEnv(self, task, render_mode=render_mode)

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int) -> BatchedEnv:
        """Every (task, episode) column in worker processes (:class:`ParallelBatchedEnv`),
        or in this process with one worker; the two agree exactly."""
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        tasks = [self.coerce_task(task) for task in tasks]
        columns = len(tasks) * episodes_per_task
        workers = min(self.workers or default_workers(), columns)
        if workers <= 1:
            return SyncBatchedEnv([self.make_env(task) for task in tasks
                                   for _ in range(episodes_per_task)], flags=self.success_flags)
        resolved = {task: self.resolve(task) for task in tasks}
        factories = [functools.partial(_column_env, self, task, resolved[task])
                     for task in tasks for _ in range(episodes_per_task)]
        return ParallelBatchedEnv(factories, workers, flags=self.success_flags)

    def __repr__(self) -> str:
        return f"<TaskFamily {self.name} ({self.env_id}, benchmark seed {self.seed})>"


class ML1(MetaWorldFamily):
    """One Meta-World environment: training and test goals of ``metaworld.ML1(env, seed)``."""

    benchmark = "ML1"

    def __init__(self, env: str = "reach-v3", seed: int = 0, workers: int | None = None
                 ) -> None:
        if env not in ML1_ENVS:
            raise ValueError(f"unknown Meta-World environment {env!r}; choose from "
                             f"{list(ML1_ENVS)}")
        super().__init__(seed, workers)
        self.env = env
        self.name = ml1_name(env)
        self.env_id = ml1_env_id(env)

    def envs(self, split: str) -> tuple[str, ...]:
        return (self.env,)


class ML10(MetaWorldFamily):
    """Meta-World's ML10: 10 training environments, 5 held-out ones."""

    name = "ml10"
    env_id = "metarl/ML10-v0"
    benchmark = "ML10"


class ML45(MetaWorldFamily):
    """Meta-World's ML45: 45 training environments, 5 held-out ones."""

    name = "ml45"
    env_id = "metarl/ML45-v0"
    benchmark = "ML45"
