"""A complete, minimal task family to copy when you write your own.

Copy this file to ``envs/<your_family>.py`` (or into your own package), rename things, and
follow the numbered steps. Then run ``metarl check <your-family-name>``: it exercises every
contract (spaces, JSON tasks, determinism, batched vs single env, rendering) and says what to
fix. Finally add ``<your_family>`` to the imports in ``envs/__init__.py`` (the folder installs
as ``metarl.envs``; in your own package, list the module under the ``metarl.plugins``
entry-point group instead).

The family here: a point on a line must walk to a hidden target position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl import ArrayEnv, ArrayFamily, BatchRNG, State, TaskArrays, register_family


# 1. The task: a frozen dataclass of plain values (floats, ints, tuples) that round-trips
#    through JSON. Derived quantities are properties, never stored fields.
@dataclass(frozen=True)
class LineTask:
    target: float

    @property
    def side(self) -> str:
        return "left" if self.target < 0 else "right"


# 2. The env class: documentation, metadata and drawing only. The dynamics live in the family.
class LineTargetEnv(ArrayEnv):
    """
    ## Description
    A point starts within 0.1 of 0 on a line and must reach a hidden target in [-1, 1].

    ## Action Space
    `Box(-0.2, 0.2, (1,), float32)`: the move; larger moves are clipped.

    ## Observation Space
    `Box(-5, 5, (1,), float32)`: the position.

    ## Rewards
    Minus the distance to the target after each move.

    ## Episode End
    Truncated after 20 steps.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 15}
    render_size = (400, 120)

    def draw(self, canvas: Any) -> None:
        """The current state (``self.state``, a batch of one) on a pygame Surface."""
        import pygame  # imported lazily: only rendering needs it

        width, height = canvas.get_size()

        def x_pixel(x: float) -> int:
            return int(width / 2 + x * width / 5)

        canvas.fill((250, 250, 250))
        pygame.draw.line(canvas, (120, 120, 120), (0, height // 2), (width, height // 2), 2)
        pygame.draw.circle(canvas, (40, 170, 70), (x_pixel(self.task.target), height // 2), 10)
        position = float(self.state["position"][0, 0])
        pygame.draw.circle(canvas, (20, 40, 160), (x_pixel(position), height // 2), 7)


# 3. The family: class attributes, task distributions, and the dynamics written once as
#    array code over a batch. Every array has a leading batch dimension: n_tasks for
#    task_params, B (= rng.batch_size, one column per (task, episode)) for everything else;
#    task_params' arrays arrive repeated to B rows in the other functions. Randomness in the
#    dynamics comes only from the BatchRNG you are given (never np.random): its draws return
#    arrays of shape [B, *size], e.g. rng.uniform(low, high, size=(1,)), rng.normal(size=(2,)),
#    rng.integers(high), rng.bernoulli(p), rng.categorical(probs). That is what makes a seeded
#    batch reproduce the single env exactly (`metarl check` tests it).
class LineTarget(ArrayFamily):
    name = "line-target"
    env_id = "metarl/LineTarget-v0"
    task_type = LineTask
    max_episode_steps = 20
    splits = ("test", "ood")
    env_class = LineTargetEnv
    observation_space = gym.spaces.Box(-5.0, 5.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(-0.2, 0.2, shape=(1,), dtype=np.float32)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[LineTask]:
        return [LineTask(target=float(t)) for t in rng.uniform(-1.0, 1.0, size=n)]

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[LineTask]:
        magnitude = rng.uniform(1.0, 2.0, size=n)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        return [LineTask(target=float(t)) for t in magnitude * sign]

    def task_params(self, tasks: Sequence[LineTask]) -> TaskArrays:
        """{name: array [n_tasks, ...]}: here "target" [n_tasks, 1] float64."""
        return {"target": np.array([[task.target] for task in tasks])}

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        """{name: array [B, ...]}: here "position" [B, 1] float64, uniform in [-0.1, 0.1)."""
        return {"position": rng.uniform(-0.1, 0.1, size=(1,))}

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        """state and action [B, 1] (float32, as the action space) in; the next state (same
        keys and shapes), reward [B] float and terminated [B] bool out."""
        position = np.clip(state["position"] + np.clip(action, -0.2, 0.2), -5.0, 5.0)
        reward = -np.abs(position - params["target"])[:, 0]
        return {"position": position}, reward, np.zeros(len(reward), dtype=bool)

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        """[B, *observation_space.shape], numbers castable to its dtype: here [B, 1]."""
        return state["position"]

    # Optional: the oracle, where the best return given the task is computable. It sees each
    # column's true state and task arrays (repeated to B rows; task_params may add derived
    # arrays it needs, such as a table of optimal action values) and returns one action per
    # column, in the action space (its dtype and bounds). It is the `oracle` reference row
    # beside the learners (metarl.family.oracle.oracle_returns). Leave it out otherwise.
    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """[B, *action_space.shape]: here the step straight to the target, clipped."""
        step = np.clip(params["target"] - state["position"], -0.2, 0.2)
        return step.astype(self.action_space.dtype)


# 4. One registration line: the metarl registry and the Gymnasium id at once.
register_family(LineTarget.name, LineTarget)
