"""Families whose dynamics are written once, as numpy array code over a batch.

A family subclasses :class:`ArrayFamily` and implements four array functions (every array has a
leading batch dimension ``B``):

- ``task_params(tasks) -> TaskArrays``: the tasks as arrays ``[n_tasks, ...]``;
- ``initial_state(params, rng) -> dict[str, array[B, ...]]``;
- ``transition(state, action, params, rng) -> (state, reward[B], terminated[B])``;
- ``observe(state, params) -> array[B, *obs_shape]``.

Optionally, where the best return given the task is computable, a family also implements
``oracle_action(state, params) -> array[B, *action_shape]``: what a policy that knows each
column's task and true state does (see :mod:`metarl.family.oracle`).

From them it gets both a single Gymnasium env (:class:`ArrayEnv`, the batch of one) and a
natively batched env (:class:`ArrayVectorEnv`), which therefore cannot disagree.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.family.base import TaskFamily
from metarl.family.drawing import CanvasWindow
from metarl.family.rng import BatchRNG
from metarl.family.vector import BatchedEnv

State = dict[str, np.ndarray]
"""A batch of states: named arrays with leading dimension ``B``."""
TaskArrays = dict[str, np.ndarray]
"""A batch of tasks as named arrays (``task_params``), leading dimension ``n_tasks`` or ``B``."""


class ArrayFamily(TaskFamily):
    """A task family with batched array dynamics (see the module docstring)."""

    env_class: ClassVar[type[ArrayEnv]]
    """The family's Gymnasium env class (documentation, metadata and drawing)."""

    @abc.abstractmethod
    def task_params(self, tasks: Sequence[Any]) -> TaskArrays:
        """Stack the tasks' parameters into arrays with leading dimension ``len(tasks)``."""

    def succeeded(self, state: State, params: TaskArrays) -> np.ndarray:
        """Whether each column's state achieves its task, ``[B]`` bool: families that define
        success set ``success_key = "success"`` and override this; both their envs then
        report it in every step's ``info`` (an episode succeeds if any of its steps does)."""
        raise NotImplementedError(f"family {self.name!r} defines no success")

    @abc.abstractmethod
    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        """Start states for a batch."""

    @abc.abstractmethod
    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        """One step for a batch: next state, reward ``[B]`` and terminated ``[B]``."""

    @abc.abstractmethod
    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        """Observations ``[B, *obs_shape]`` of a batch of states."""

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """The action of a policy that knows each column's task and true state (batched, like
        transition's ``action``): the ``oracle`` reference row of comparisons. Families where
        the best return given the task is computable override it."""
        raise NotImplementedError(f"family {self.name!r} has no oracle")

    @property
    def has_oracle(self) -> bool:
        """Whether the family overrides :meth:`oracle_action`."""
        return type(self).oracle_action is not ArrayFamily.oracle_action

    def make_base_env(self, task: Any, render_mode: str | None = None) -> ArrayEnv:
        return self.env_class(self, task, render_mode=render_mode)

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int) -> ArrayVectorEnv:
        return ArrayVectorEnv(self, tasks, episodes_per_task)


def where_columns(mask: np.ndarray, chosen: State, other: State) -> State:
    """The state whose column ``i`` is ``chosen``'s where ``mask[i]``, else ``other``'s."""
    return {key: np.where(mask.reshape((-1,) + (1,) * (value.ndim - 1)), chosen[key], value)
            for key, value in other.items()}


def _observation(family: ArrayFamily, state: State, params: TaskArrays) -> np.ndarray:
    return family.observe(state, params).astype(family.observation_space.dtype, copy=False)


class ArrayEnv(CanvasWindow, gym.Env):
    """A single env that runs its family's array dynamics with a batch of one.

    Family envs subclass it, add the Markdown docstring and implement :meth:`draw`.
    ``reset(options={"task": task_or_dict})`` switches the task. For drawing, the env keeps
    ``steps``, ``episode_return`` and ``last_reward`` of the current episode; anything else a
    drawing needs (a trail, say) is kept by overriding :meth:`record`.
    """

    metadata: dict[str, Any] = {"render_modes": ["human", "rgb_array"], "render_fps": 30}
    render_size: tuple[int, int] = (400, 400)

    def __init__(self, family: ArrayFamily, task: Any, render_mode: str | None = None) -> None:
        self.set_render_mode(render_mode)
        self.family = family
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self._set_task(task)
        self._rng = BatchRNG(np.zeros(1, dtype=np.uint64))
        self.state: State = family.initial_state(self.params, self._rng)
        self._start_episode()

    def _set_task(self, task: Any) -> None:
        self.task = self.family.coerce_task(task)
        self.params = self.family.task_params([self.task])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self._set_task(options["task"])
        key = seed if seed is not None else int(self.np_random.integers(2**63))
        self._rng = BatchRNG(np.array([key], dtype=np.uint64))
        self.state = self.family.initial_state(self.params, self._rng)
        self._start_episode()
        if self.render_mode == "human":
            self.render()
        return _observation(self.family, self.state, self.params)[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        batch_action = np.asarray(action)[None]
        self.state, reward, terminated = self.family.transition(
            self.state, batch_action, self.params, self._rng
        )
        self.steps += 1
        self.last_reward = float(reward[0])
        self.episode_return += self.last_reward
        self.record(reset=False)
        if self.render_mode == "human":
            self.render()
        obs = _observation(self.family, self.state, self.params)[0]
        info = {}
        if self.family.success_key is not None:
            info[self.family.success_key] = bool(self.family.succeeded(self.state,
                                                                       self.params)[0])
        return obs, self.last_reward, bool(terminated[0]), False, info

    def _start_episode(self) -> None:
        self.steps = 0
        self.episode_return = 0.0
        self.last_reward = 0.0
        self.record(reset=True)

    def record(self, reset: bool) -> None:
        """Hook run after every reset and step, before rendering: keep drawing-only history
        (``self.state`` is the new state)."""

    def close(self) -> None:
        self.close_window()


class ArrayVectorEnv(BatchedEnv):
    """The native batched env of an :class:`ArrayFamily` (semantics in :mod:`metarl.vector`)."""

    def __init__(self, family: ArrayFamily, tasks: Sequence[Any], episodes_per_task: int) -> None:
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        self.family = family
        self.tasks = [family.coerce_task(task) for task in tasks]
        self.params = {
            key: np.repeat(value, episodes_per_task, axis=0)
            for key, value in family.task_params(self.tasks).items()
        }
        self._set_spaces(
            len(self.tasks) * episodes_per_task, family.observation_space, family.action_space
        )
        self.horizon = family.max_episode_steps
        self._rng = BatchRNG.from_seed(0, self.num_envs)
        self.state: State = {}
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)

    @property
    def active(self) -> np.ndarray:
        """The columns whose episode is still running, ``[B]`` bool."""
        return ~self._done

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            seed = int(np.random.default_rng().integers(2**62))
        self._rng = BatchRNG.from_seed(seed, self.num_envs)
        self.state = self.family.initial_state(self.params, self._rng)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        return _observation(self.family, self.state, self.params), {}

    def reset_columns(self, columns: np.ndarray) -> np.ndarray:
        fresh = self.family.initial_state(self.params, self._rng)
        self.state = where_columns(~columns, self.state, fresh)
        self._done = self._done & ~columns
        self._steps[columns] = 0
        return _observation(self.family, self.state, self.params)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        state, reward, terminated = self.family.transition(
            self.state, np.asarray(actions), self.params, self._rng
        )
        done = self._done
        if done.any():
            state = where_columns(done, self.state, state)
            reward = np.where(done, 0.0, reward)
        self.state = state
        self._done = done | terminated
        self._steps += 1
        truncated = (self._steps >= self.horizon) & ~self._done
        obs = _observation(self.family, state, self.params)
        info = {}
        if self.family.success_key is not None:
            info[self.family.success_key] = self.family.succeeded(state, self.params) & ~done
        return obs, np.asarray(reward, dtype=np.float64), self._done.copy(), truncated, info
