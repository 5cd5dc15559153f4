"""The task-family protocol: a distribution over tasks plus the environments that run them.

A *task* is a frozen dataclass that round-trips through JSON. A *family* draws training tasks,
returns fixed held-out splits, builds a single Gymnasium env for one task and a batched env for
many (task, episode) pairs at once.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.config import MAX_COLUMNS, ConfigError
from metarl.family.vector import BatchedEnv, SyncBatchedEnv

# Held-out splits draw from a stream that training never touches, whatever the seeds.
_HELD_OUT_STREAM = 0x7E57


class TaskFamily(abc.ABC):
    """Base class of every task family.

    Subclasses set the class attributes (spaces included) and implement :meth:`sample_tasks`
    and :meth:`make_base_env`. Families with an out-of-distribution split list ``"ood"`` in
    ``splits`` and implement :meth:`sample_ood_tasks`. :meth:`make_vector_env` falls back to
    stepping single envs; families with array dynamics get a native batched env from
    :class:`metarl.family.array.ArrayFamily`.
    """

    name: str
    """Registry name, e.g. ``"navigation2d"`` (a class attribute, or set in ``__init__`` by a
    family with constructor parameters)."""
    env_id: str
    """Gymnasium id, e.g. ``"metarl/Navigation2D-v0"``."""
    task_type: ClassVar[type]
    """The frozen dataclass of one task."""
    max_episode_steps: ClassVar[int]
    """Episode horizon; Gymnasium's ``TimeLimit`` enforces it."""
    observation_space: gym.spaces.Space
    """The space of one observation (a class attribute, or set in ``__init__``)."""
    action_space: gym.spaces.Space
    """The space of one action."""
    splits: ClassVar[tuple[str, ...]] = ("test",)
    """Held-out splits :meth:`test_tasks` accepts."""
    success_key: ClassVar[str | None] = None
    """For families that define success (a goal reached, an object placed): the key of the
    single env's step ``info`` whose bool says the task is achieved at that step, e.g.
    ``"success"``. An episode succeeds if the flag is true at any of its steps
    (:func:`metarl.family.vector.episode_successes`); the family's batched env reports the
    flags of every column as a ``[B]`` bool array under the same key of its step ``info``.
    ``None``: the family has no notion of success, only returns."""

    @abc.abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` training tasks."""

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` out-of-distribution tasks (families that list ``"ood"`` in ``splits``)."""
        raise NotImplementedError(f"family {self.name!r} has no 'ood' split")

    @abc.abstractmethod
    def make_base_env(self, task: Any, render_mode: str | None = None) -> gym.Env:
        """The family's env for ``task``, without a time limit."""

    def check_split(self, split: str) -> None:
        """Raise :class:`~metarl.config.ConfigError` unless ``split`` is one of :attr:`splits`."""
        if split not in self.splits:
            raise ConfigError(
                f"family {self.name!r} has no split {split!r}; choose from {list(self.splits)}"
            )

    def test_tasks(self, n: int, seed: int = 0, split: str = "test") -> list[Any]:
        """A fixed, reproducible held-out split of ``n`` tasks."""
        check_count("test tasks", n)
        self.check_split(split)
        rng = np.random.default_rng([_HELD_OUT_STREAM, seed])
        return self.sample_ood_tasks(n, rng) if split == "ood" else self.sample_tasks(n, rng)

    def make_env(self, task: Any = None, render_mode: str | None = None) -> gym.Env:
        """A standard Gymnasium env for ``task`` (a task, its JSON dict, or None for a default)."""
        env = self.make_unlimited_env(task, render_mode=render_mode)
        return gym.wrappers.TimeLimit(env, max_episode_steps=self.max_episode_steps)

    def make_unlimited_env(self, task: Any = None, render_mode: str | None = None) -> gym.Env:
        """:meth:`make_env` without the time limit (``gymnasium.make`` adds its own)."""
        task = self.default_task() if task is None else self.coerce_task(task)
        return self.make_base_env(task, render_mode=render_mode)

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int) -> BatchedEnv:
        """A batched env running every (task, episode) pair; columns are task-major."""
        envs = [self.make_env(task) for task in tasks for _ in range(episodes_per_task)]
        return SyncBatchedEnv(envs, flags=self.success_flags)

    @property
    def success_flags(self) -> tuple[str, ...]:
        """The ``flags`` a batched env of the family gathers: ``(success_key,)`` or ``()``."""
        return () if self.success_key is None else (self.success_key,)

    def default_task(self) -> Any:
        """The task an env gets when none is given: the first held-out task."""
        return self.test_tasks(1)[0]

    # --- JSON round trip -------------------------------------------------------------------
    def task_to_json(self, task: Any) -> dict[str, Any]:
        """The task as a JSON-compatible dict."""
        return json.loads(json.dumps(dataclasses.asdict(task)))

    def task_from_json(self, data: Mapping[str, Any]) -> Any:
        """Rebuild a task from :meth:`task_to_json`'s dict (lists become tuples). Every value
        is checked against the task dataclass's field types (numbers finite, tuples of the
        declared lengths) before the dataclass checks its own ranges; a bad task is a
        :class:`~metarl.config.ConfigError` naming the field."""
        fields = {f.name for f in dataclasses.fields(self.task_type)}
        unknown = set(data) - fields
        missing = {f.name for f in dataclasses.fields(self.task_type)
                   if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING} - set(data)
        if unknown or missing:
            raise ConfigError(
                f"bad {self.name} task: expected keys {sorted(fields)}"
                + (f", unknown {sorted(map(str, unknown))[:10]}" if unknown else "")
                + (f", missing {sorted(missing)}" if missing else "")
            )
        hints = typing.get_type_hints(self.task_type)
        values = {key: _typed(value, hints[key], f"{self.name} task field {key!r}")
                  for key, value in data.items()}
        try:
            return self.task_type(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"bad {self.name} task: {_clip(str(error))}") from None

    def coerce_task(self, task: Any) -> Any:
        """Accept a task or its JSON dict; anything else is an error naming what was given."""
        if isinstance(task, self.task_type):
            return task
        if isinstance(task, Mapping):
            return self.task_from_json(task)
        raise TypeError(
            f"expected a {self.task_type.__name__} or its JSON dict for family {self.name!r}, "
            f"got {type(task).__name__}"
        )

    def __repr__(self) -> str:
        return f"<TaskFamily {self.name} ({self.env_id})>"


def check_count(what: str, n: Any) -> None:
    """Refuse a number of tasks that is not a whole number in ``[1, MAX_COLUMNS]``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_COLUMNS:
        raise ConfigError(f"the number of {what} must be a whole number in [1, {MAX_COLUMNS:,}], "
                          f"got {_clip(repr(n))}")


def held_out_tasks(family: TaskFamily, n: int, seed: int = 0, split: str = "test") -> list[Any]:
    """``family.test_tasks(n, seed, split)``, checked: exactly ``n`` tasks of the family's
    task type (a family that overrides ``test_tasks`` cannot hand evaluation a split of
    another size)."""
    check_count("test tasks", n)
    family.check_split(split)
    tasks = family.test_tasks(int(n), seed, split)
    if not isinstance(tasks, list | tuple) or len(tasks) != n:
        count = len(tasks) if isinstance(tasks, list | tuple) else type(tasks).__name__
        raise ConfigError(f"family {family.name!r}: test_tasks({n}, seed={seed}, "
                          f"split={split!r}) returned {count} tasks; it must return exactly {n}")
    return [family.coerce_task(task) for task in tasks]


def _typed(value: Any, kind: Any, what: str) -> Any:
    """``value`` as field type ``kind`` (float, int, bool, str, ``tuple[X, ...]`` or
    ``tuple[X, Y]``, nested), lists becoming tuples; anything else is a
    :class:`ConfigError`. The check follows the declared type, so a value nested deeper than
    its type is refused without walking it."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{what} must be a list, got {_clip(repr(value))}")
        items = typing.get_args(kind)
        if len(items) == 2 and items[1] is Ellipsis:
            return tuple(_typed(item, items[0], what) for item in value)
        if len(value) != len(items):
            raise ConfigError(f"{what} must hold {len(items)} values, got {len(value)}")
        return tuple(_typed(item, item_kind, what) for item, item_kind in zip(value, items))
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise ConfigError(f"{what} must be a finite number, got {_clip(repr(value))}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{what} must be a whole number, got {_clip(repr(value))}")
        return value
    if kind in (bool, str) and not isinstance(value, kind):
        raise ConfigError(f"{what} must be a {kind.__name__}, got {_clip(repr(value))}")
    return value


def _clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters, so a huge value never floods an error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
