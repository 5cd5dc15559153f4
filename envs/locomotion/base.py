"""What the locomotion families share: MuJoCo physics as array dynamics, reset noise, actions.

A family's state is a dict of arrays over the batch: ``physics[B, nq + 2 * nv]`` (see
:mod:`envs.locomotion.physics`) plus what the robot's observation and reward need from the
last step; the batched env adds ``active[B]``, False for the columns it need not simulate.
The single env and the batched env both step it through :meth:`LocomotionFamily.transition`,
so they cannot disagree.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.envs.locomotion.physics import BatchPhysics
from metarl.family.array import ArrayEnv, ArrayFamily, ArrayVectorEnv, TaskArrays
from metarl.family.rng import BatchRNG

HORIZON = 200
"""Steps per episode, as in the MAML paper's locomotion experiments."""
FRAME_SKIP = 5
"""MuJoCo steps per env step (Gymnasium's v5 value for both robots)."""
RESET_NOISE = 0.1
"""Start positions get uniform noise in [-0.1, 0.1], velocities 0.1 x standard normal (v5)."""


@dataclass(frozen=True)
class DirectionTask:
    """Run forward (+1, along +x) or backward (-1)."""

    direction: int

    def __post_init__(self) -> None:
        if isinstance(self.direction, bool) or self.direction not in (-1, 1):
            raise ValueError(f"direction must be 1 (forward) or -1 (backward), got "
                             f"{self.direction!r}")

    @property
    def forward(self) -> bool:
        return self.direction == 1


class DirectionTasks:
    """The task half of a direction family (mixed in before its family base): forward or
    backward with equal probability, given to the array family as ``direction``, ``[B]``."""

    task_type: ClassVar[type] = DirectionTask

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        return [DirectionTask(direction=1 if forward else -1) for forward in rng.random(n) < 0.5]

    def task_params(self, tasks: Sequence[DirectionTask]) -> TaskArrays:
        return {"direction": np.array([task.direction for task in tasks], dtype=np.float64)}


def check_real(name: str, value: Any, bound: float) -> None:
    """Reject a task value that is not a real number in ``[-bound, bound]``, naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not abs(float(value)) <= bound:
        raise ValueError(f"{name} must be a number in [-{bound:g}, {bound:g}], got {value!r}")


class LocomotionFamily(ArrayFamily):
    """An array family over a MuJoCo model of Gymnasium's (the v5 file, frame skip and reset).

    ``threads`` splits each batched step between that many threads (``mj_step`` releases the
    GIL); results do not depend on it.

    No oracle (``oracle_action``): the best return given the task would need an optimal
    controller of the robot, which nothing here computes (knowing the direction, velocity or
    goal still leaves the whole locomotion problem), so comparisons have no oracle row.
    """

    xml_file: ClassVar[str]
    max_episode_steps = HORIZON
    ctrl_cost_weight: ClassVar[float]
    """Gymnasium's v5 weight of the sum of squared (clipped) actions."""

    def __init__(self, threads: int = 1) -> None:
        self.physics = self.make_physics(threads)
        low, high = self.physics.model.actuator_ctrlrange.T
        self._low, self._high = low.copy(), high.copy()
        if self.action_space.shape != (self.physics.model.nu,):
            raise ValueError(
                f"{self.xml_file} has {self.physics.model.nu} actuators, the family expects "
                f"{self.action_space.shape}: is gymnasium's model file the v5 one?"
            )

    def make_physics(self, threads: int) -> BatchPhysics:
        return BatchPhysics(self.xml_file, FRAME_SKIP, threads=threads)

    def start_physics(self, rng: BatchRNG) -> np.ndarray:
        """v5's reset: positions plus uniform noise, velocities plus Gaussian noise."""
        physics = self.physics
        qpos = physics.init_qpos + rng.uniform(-RESET_NOISE, RESET_NOISE, size=(physics.nq,))
        qvel = physics.init_qvel + RESET_NOISE * rng.normal(size=(physics.nv,))
        return physics.pack(qpos, qvel)

    def controls(self, action: np.ndarray) -> np.ndarray:
        """Actions ``[B, nu]`` clipped to the actuators' range (MuJoCo clamps them the same)."""
        action = np.asarray(action, dtype=np.float64).reshape(-1, self.physics.model.nu)
        if not np.isfinite(action).all():
            raise ValueError(f"{self.name} actions must be finite, got {action!r}")
        return np.clip(action, self._low, self._high)

    def ctrl_cost(self, ctrl: np.ndarray) -> np.ndarray:
        return self.ctrl_cost_weight * np.sum(np.square(ctrl), axis=-1)

    def make_vector_env(self, tasks: Sequence[Any], episodes_per_task: int
                        ) -> LocomotionVectorEnv:
        return LocomotionVectorEnv(self, tasks, episodes_per_task)

    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.physics.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


class LocomotionVectorEnv(ArrayVectorEnv):
    """The family's batched env; columns whose episode has terminated are no longer simulated
    (their steps are masked anyway), which matters for the ant, whose episodes end early."""

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.state = {**self.state, "active": self.active}
        return super().step(actions)


class LocomotionEnv(ArrayEnv):
    """Base of the locomotion envs: keeps the episode's history for the drawing."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 20}
    family: LocomotionFamily

    def record(self, reset: bool) -> None:
        if reset:
            self.history: list[dict[str, Any]] = []
        self.history.append({key: value[0].copy() for key, value in self.state.items()})

    @property
    def step_count(self) -> int:
        return len(self.history) - 1


def box(shape: tuple[int, ...]) -> gym.spaces.Box:
    """An unbounded float64 observation space, as Gymnasium's MuJoCo envs declare."""
    return gym.spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float64)
