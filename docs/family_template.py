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
    `line-target`: `Box(-0.2, 0.2, (1,), float32)`, the move; larger moves are clipped.
    `line-target-discrete`: `Discrete(3)`, a move of -0.2, 0 or +0.2.

    ## Observation Space
    `Box(-5, 5, (1,), float32)`: the position.

    ## Rewards
    Minus the distance to the target after each move.

    ## Episode End
    Truncated after 20 steps.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 15}
    render_size = (400, 120)

    def record(self, reset: bool) -> None:
        """Drawing history, kept after every reset and step (``self.state`` is the new state):
        here the positions visited this episode, drawn as a trail."""
        if reset:
            self.trail: list[float] = []
        self.trail.append(float(self.state["position"][0, 0]))

    def draw(self, canvas: Any) -> None:
        """The current state (``self.state``, a batch of one) on a pygame Surface; the env
        also keeps ``steps``, ``episode_return`` and ``last_reward`` for text."""
        import pygame  # imported lazily: only rendering needs it

        width, height = canvas.get_size()

        def x_pixel(x: float) -> int:
            return int(width / 2 + x * width / 5)

        canvas.fill((250, 250, 250))
        pygame.draw.line(canvas, (120, 120, 120), (0, height // 2), (width, height // 2), 2)
        pygame.draw.circle(canvas, (40, 170, 70), (x_pixel(self.task.target), height // 2), 10)
        for x in self.trail[:-1]:
            pygame.draw.circle(canvas, (170, 180, 220), (x_pixel(x), height // 2), 3)
        pygame.draw.circle(canvas, (20, 40, 160), (x_pixel(self.trail[-1]), height // 2), 7)


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
    action_space: gym.spaces.Space = gym.spaces.Box(-0.2, 0.2, shape=(1,), dtype=np.float32)

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

    def moves(self, action: np.ndarray) -> np.ndarray:
        """The moves [B, 1] that the actions [B, 1] (Box) ask for, clipped."""
        return np.clip(action, -0.2, 0.2)

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        """state and action [B, ...] (the action space's dtype) in; the next state (same keys
        and shapes), reward [B] float and terminated [B] bool out."""
        position = np.clip(state["position"] + self.moves(action), -5.0, 5.0)
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


# Discrete actions: the same family with Discrete(3). Its actions arrive as integers [B]
#    (an array of the space's dtype, int64), and its oracle returns integers in [0, n).
class DiscreteLineTarget(LineTarget):
    name = "line-target-discrete"
    env_id = "metarl/LineTargetDiscrete-v0"
    action_space = gym.spaces.Discrete(3)
    STEPS = np.array([-0.2, 0.0, 0.2])

    def moves(self, action: np.ndarray) -> np.ndarray:
        """Action 0, 1, 2 [B] moves by -0.2, 0, +0.2: [B, 1]."""
        return self.STEPS[np.asarray(action, dtype=np.int64)][:, None]

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """[B] int: the move that brings the point nearest the target."""
        after = state["position"] + self.STEPS[None, :]  # [B, 3]
        return np.argmin(np.abs(after - params["target"]), axis=1).astype(np.int64)


# Fixed sets of tasks: a family whose tasks come from a fixed list (a permutation of arms per
#    task, a set of levels) draws indices into that list in sample_tasks and test_tasks, and
#    keeps the list as a module constant, so a task (its index, or the permutation itself as a
#    tuple) still round-trips through JSON. Keep the held-out list apart from the training one
#    (e.g. every fifth permutation is held out) so that test tasks are really unseen.

# 4. One registration line per family: the metarl registry and the Gymnasium id at once.
register_family(LineTarget.name, LineTarget)
register_family(DiscreteLineTarget.name, DiscreteLineTarget)
