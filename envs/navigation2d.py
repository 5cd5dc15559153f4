"""Navigation2D: a point agent must find a goal it cannot see (the MAML paper's 2D navigation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family.array import ArrayEnv, ArrayFamily, State, TaskArrays
from metarl.family.rng import BatchRNG
from metarl.registry import register_family

MAX_STEP = 0.1
GOAL_RADIUS = 0.01
TRAIN_HALF_WIDTH = 0.5
OOD_HALF_WIDTH = 1.0
MAX_GOAL = 10.0
"""Largest goal coordinate a task may have (100 steps of 0.1 reach at most 10)."""


@dataclass(frozen=True)
class NavigationTask:
    """A goal position in the plane."""

    goal: tuple[float, float]

    def __post_init__(self) -> None:
        if len(self.goal) != 2 or not all(abs(float(v)) <= MAX_GOAL for v in self.goal):
            raise ValueError(f"navigation goal {self.goal!r} must be two coordinates in "
                             f"[-{MAX_GOAL:g}, {MAX_GOAL:g}]")

    @property
    def distance_from_start(self) -> float:
        return float(np.hypot(*self.goal))


class Navigation2DEnv(ArrayEnv):
    """
    ## Description
    A point starts at the origin and moves in the plane; each task hides a goal position.
    The agent observes only its own position, so it must discover the goal from the rewards
    of its first episodes.

    ## Action Space
    `Box(-0.1, 0.1, (2,), float32)`: the displacement; larger actions are clipped.

    ## Observation Space
    | Num | Observation | Min  | Max |
    |-----|-------------|------|-----|
    | 0   | x position  | -Inf | Inf |
    | 1   | y position  | -Inf | Inf |

    ## Rewards
    Minus the Euclidean distance to the goal after each move.

    ## Episode End
    Terminates within 0.01 of the goal; truncated after 100 steps (registration). A step
    within 0.01 of the goal is a success (`info["success"]`).

    ## Arguments
    `gymnasium.make("metarl/Navigation2D-v0", task={"goal": [0.3, -0.1]}, render_mode=...)`.
    Training goals are uniform in [-0.5, 0.5]^2; the `ood` split puts them in
    [-1, 1]^2 outside that square.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def record(self, reset: bool) -> None:
        if reset:
            self.trail: list[np.ndarray] = []
        self.trail.append(self.state["position"][0].copy())

    def draw(self, canvas: Any) -> None:
        import pygame

        width, height = canvas.get_size()
        scale = min(width, height) / (2 * OOD_HALF_WIDTH * 1.1)

        def to_pixels(point: np.ndarray) -> tuple[int, int]:
            return int(width / 2 + point[0] * scale), int(height / 2 - point[1] * scale)

        position = self.state["position"][0]
        trail = self.trail
        canvas.fill((245, 245, 240))
        half = int(TRAIN_HALF_WIDTH * scale)
        centre = to_pixels(np.zeros(2))
        pygame.draw.rect(
            canvas, (220, 225, 235), (centre[0] - half, centre[1] - half, 2 * half, 2 * half)
        )
        goal = to_pixels(np.asarray(self.task.goal))
        pygame.draw.circle(canvas, (40, 170, 70), goal, max(6, int(0.05 * scale)))
        pygame.draw.circle(canvas, (30, 120, 50), goal, max(6, int(0.05 * scale)), 2)
        if len(trail) > 1:
            pygame.draw.lines(canvas, (90, 110, 200), False, [to_pixels(p) for p in trail], 2)
        pygame.draw.circle(canvas, (20, 40, 160), to_pixels(position), 6)
        pygame.draw.circle(canvas, (80, 80, 80), centre, 3)


class Navigation2D(ArrayFamily):
    name = "navigation2d"
    env_id = "metarl/Navigation2D-v0"
    task_type = NavigationTask
    max_episode_steps = 100
    splits = ("test", "ood")
    env_class = Navigation2DEnv
    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
    success_key = "success"

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[NavigationTask]:
        goals = rng.uniform(-TRAIN_HALF_WIDTH, TRAIN_HALF_WIDTH, size=(n, 2))
        return [NavigationTask(goal=(float(x), float(y))) for x, y in goals]

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[NavigationTask]:
        tasks: list[NavigationTask] = []
        while len(tasks) < n:
            x, y = rng.uniform(-OOD_HALF_WIDTH, OOD_HALF_WIDTH, size=2)
            if max(abs(x), abs(y)) > TRAIN_HALF_WIDTH:
                tasks.append(NavigationTask(goal=(float(x), float(y))))
        return tasks

    def task_params(self, tasks: Sequence[NavigationTask]) -> TaskArrays:
        return {"goal": np.array([task.goal for task in tasks], dtype=np.float64).reshape(-1, 2)}

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        return {"position": np.zeros((rng.batch_size, 2))}

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        position = state["position"] + np.minimum(np.maximum(action, -MAX_STEP), MAX_STEP)
        offset = position - params["goal"]
        distance = np.hypot(offset[:, 0], offset[:, 1])
        return {"position": position}, -distance, distance < GOAL_RADIUS

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        return state["position"]

    def succeeded(self, state: State, params: TaskArrays) -> np.ndarray:
        """Within 0.01 of the goal (what ends an episode early)."""
        offset = state["position"] - params["goal"]
        return np.hypot(offset[:, 0], offset[:, 1]) < GOAL_RADIUS

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """Straight at the goal, each coordinate's step clipped to 0.1: the move to the point
        of the reachable square nearest the goal. After every step the point is as close to
        the goal as any policy can be, so the return is the best possible."""
        offset = params["goal"] - state["position"]
        return np.clip(offset, -MAX_STEP, MAX_STEP).astype(self.action_space.dtype)


register_family(Navigation2D.name, Navigation2D)
