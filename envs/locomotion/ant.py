"""The ant families: run forward or backward (MAML), or walk to a goal position in a disc.

Physics, observation, reset and termination of Gymnasium's ``Ant-v5``; the task sets the
reward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.locomotion import drawing
from metarl.envs.locomotion.base import (
    FRAME_SKIP,
    DirectionTasks,
    LocomotionEnv,
    LocomotionFamily,
    box,
    check_real,
)
from metarl.envs.locomotion.physics import BatchPhysics
from metarl.family.array import State, TaskArrays
from metarl.family.rng import BatchRNG

CTRL_COST_WEIGHT = 0.5
"""Ant-v5's control cost weight."""
CONTACT_COST_WEIGHT = 5e-4
"""Ant-v5's weight of the squared clipped external contact forces."""
CONTACT_FORCE_RANGE = (-1.0, 1.0)
"""Contact forces are clipped to this range, in the observation and the cost (v5)."""
HEALTHY_Z = (0.2, 1.0)
"""The ant is healthy while its torso height is in this range and its state is finite (v5)."""
HEALTHY_REWARD = 1.0
"""Ant-v5's reward per healthy step (ant-dir)."""
GOAL_SURVIVE_REWARD = 4.0
"""ant-goal's reward per healthy step: more than any training goal's distance from the start."""
GOAL_RADIUS = 3.0
"""Training goals are uniform in the disc of this radius around the start."""
OOD_RADIUS = 4.0
"""The ``ood`` split's goals are uniform in the ring GOAL_RADIUS < r <= OOD_RADIUS."""
MAX_GOAL = 100.0
"""Largest goal coordinate a task may have, in metres."""


@dataclass(frozen=True)
class GoalTask:
    """A goal position (x, y) in metres on the floor."""

    goal: tuple[float, float]

    def __post_init__(self) -> None:
        if not (isinstance(self.goal, tuple) and len(self.goal) == 2):
            raise ValueError(f"goal must be a pair (x, y), got {self.goal!r}")
        for value in self.goal:
            check_real("goal coordinate", value, MAX_GOAL)

    @property
    def distance_from_start(self) -> float:
        return math.hypot(*self.goal)


class AntFamily(LocomotionFamily):
    """Shared dynamics of the ant families; subclasses define :meth:`task_reward`."""

    xml_file = "ant.xml"
    ctrl_cost_weight = CTRL_COST_WEIGHT
    healthy_reward: float = HEALTHY_REWARD
    observation_space = box((105,))
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)

    def make_physics(self, threads: int) -> BatchPhysics:
        return BatchPhysics(self.xml_file, FRAME_SKIP, threads=threads, body="torso",
                            contact_forces=True)

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        physics = self.start_physics(rng)
        n = rng.batch_size
        return {
            "physics": physics,
            # After a reset the torso's xpos is its free joint's position.
            "torso_xy": self.physics.qpos(physics)[:, :2].copy(),
            "cfrc_ext": np.zeros((n, self.physics.model.nbody, 6)),
            "velocity": np.zeros((n, 2)),
        }

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        ctrl = self.controls(action)
        stepped = self.physics.step(state["physics"], ctrl, state.get("active"))
        torso_xy = stepped["body_xpos"][:, :2]
        velocity = (torso_xy - state["torso_xy"]) / self.physics.dt
        qpos, qvel = self.physics.qpos(stepped["physics"]), self.physics.qvel(stepped["physics"])
        healthy = (
            np.isfinite(qpos).all(axis=1)
            & np.isfinite(qvel).all(axis=1)
            & (qpos[:, 2] >= HEALTHY_Z[0])
            & (qpos[:, 2] <= HEALTHY_Z[1])
        )
        contact = np.clip(stepped["cfrc_ext"], *CONTACT_FORCE_RANGE)
        contact_cost = CONTACT_COST_WEIGHT * np.sum(np.square(contact), axis=(1, 2))
        next_state = {
            "physics": stepped["physics"],
            "torso_xy": torso_xy,
            "cfrc_ext": stepped["cfrc_ext"],
            "velocity": velocity,
        }
        reward = (
            self.task_reward(next_state, params)
            + self.healthy_reward * healthy
            - self.ctrl_cost(ctrl)
            - contact_cost
        )
        return next_state, reward, ~healthy

    def task_reward(self, state: State, params: TaskArrays) -> np.ndarray:
        """The task's term of the reward for the stepped states ``[B]``."""
        raise NotImplementedError

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        physics = self.physics
        contact = np.clip(state["cfrc_ext"][:, 1:], *CONTACT_FORCE_RANGE)
        return np.concatenate(
            [
                physics.qpos(state["physics"])[:, 2:],
                physics.qvel(state["physics"]),
                contact.reshape(len(contact), -1),
            ],
            axis=1,
        )


class AntEnv(LocomotionEnv):
    """Top view of the ant (subclasses add the task)."""

    render_size = (500, 500)

    def draw_ant(self, canvas: Any, centre: np.ndarray, scale: float,
                 grid: float = 1.0) -> tuple[Any, np.ndarray]:
        """The floor grid, the torso's trail and the ant, in a view centred on ``centre``."""
        import pygame

        width, height = canvas.get_size()

        def to_pixels(point: np.ndarray) -> tuple[int, int]:
            return (int(round(width / 2 + (point[0] - centre[0]) * scale)),
                    int(round(height / 2 - (point[1] - centre[1]) * scale)))

        half_w, half_h = width / 2 / scale, height / 2 / scale
        for x in np.arange(np.floor((centre[0] - half_w) / grid),
                           np.ceil((centre[0] + half_w) / grid) + 1) * grid:
            px = to_pixels(np.array([x, 0.0]))[0]
            pygame.draw.line(canvas, drawing.GRID, (px, 0), (px, height), 1)
        for y in np.arange(np.floor((centre[1] - half_h) / grid),
                           np.ceil((centre[1] + half_h) / grid) + 1) * grid:
            py = to_pixels(np.array([0.0, y]))[1]
            pygame.draw.line(canvas, drawing.GRID, (0, py), (width, py), 1)
        origin = to_pixels(np.zeros(2))
        pygame.draw.circle(canvas, drawing.MUTED, origin, 4)
        trail = [to_pixels(entry["physics"][:2]) for entry in self.history]
        if len(trail) > 1:
            pygame.draw.lines(canvas, drawing.ACHIEVED, False, trail, 2)
        physics = self.family.physics
        data = physics.kinematics(physics.qpos(self.state["physics"])[0])
        drawing.robot(canvas, physics.model, data, (0, 1), to_pixels, scale)
        return to_pixels, data.xpos[physics.body].copy()

    def status(self, canvas: Any) -> None:
        """Torso height, and whether the ant has left the healthy range."""
        z = float(self.state["physics"][0, 2])
        fallen = not HEALTHY_Z[0] <= z <= HEALTHY_Z[1]
        message = f"torso z {z:.2f} m" + ("  (unhealthy: episode over)" if fallen else "")
        colour = (190, 50, 40) if fallen else drawing.MUTED
        drawing.text(canvas, message, (12, canvas.get_height() - 24), 20, colour)
        drawing.text(canvas, f"step {self.step_count}", (canvas.get_width() - 80, 12), 20,
                     drawing.MUTED)


class AntDirEnv(AntEnv):
    """
    ## Description
    Gymnasium's `Ant-v5` robot (a torso on a free joint with four two-segment legs, eight
    torque-controlled hinges) must run forward (+x) or backward (-x), as the task says and
    the agent does not observe: the MAML paper's "ant, forward/backward" task. The physics
    is `Ant-v5`'s: the same model file (loaded from Gymnasium's assets), frame skip 5
    (0.05 s per step), reset noise, observation and termination; only the reward differs.

    Forward/backward rather than a direction on the circle: it is the MAML paper's task; for
    `direction = 1` the reward is `Ant-v5`'s, so the two tasks are v5's running task and its
    mirror image; and with two tasks one episode's return already tells
    which one it is, which separates how fast a learner adapts from how much it must explore
    (ant-goal asks the latter).

    ## Action Space
    `Box(-1, 1, (8,), float32)`: hip and ankle torques; actions outside the box are clipped
    (MuJoCo clamps the controls the same way).

    ## Observation Space
    `Box(-inf, inf, (105,), float64)`, `Ant-v5`'s layout: `qpos[2:]` (torso height and
    orientation quaternion, eight joint angles: 13), `qvel` (14), then the external contact
    forces `cfrc_ext` of the 13 bodies other than the world, clipped to [-1, 1] (78).

    ## Rewards
    `direction * v_x + 1 * healthy - 0.5 * sum(clip(action)^2)
    - 5e-4 * sum(clip(cfrc_ext, -1, 1)^2)`: `v_x` is the torso's x velocity over the step
    (`Ant-v5`'s `info["x_velocity"]`), `healthy` is 1 while the ant is healthy; the weights
    are v5's. The control cost is charged on the action clipped to the box (v5 charges the
    action as given; the two agree inside the box), so for `direction = 1` and actions inside
    the box this is exactly `Ant-v5`'s reward.

    ## Starting State
    v5's: positions `init_qpos + U(-0.1, 0.1)`, velocities `0.1 * N(0, 1)`.

    ## Episode End
    Terminates when the ant is unhealthy (torso height outside [0.2, 1.0] or a non-finite
    state), as `Ant-v5`; truncated after 200 steps (registration).

    ## Arguments
    `gymnasium.make("metarl/AntDir-v0", task={"direction": 1}, render_mode=...)`. Tasks are
    forward (1) or backward (-1) with equal probability; there is no `ood` split.

    ## Differences from the MAML paper (rllab's `AntEnvRandDirec`)
    rllab's ant model steps 0.02 s with frame skip 1 (here 0.01 s x 5), starts with bent
    legs, takes torques in [-150, 150] (here [-1, 1] times gear 150) and observes 125 values
    (all of `qpos` and `qvel`, all 14 bodies' contact forces, the torso's orientation matrix
    and centre of mass). Its reward uses the torso's centre-of-mass velocity, a control cost
    of `0.005 * sum((a / 150)^2)` and a survive bonus of 0.05; the contact cost weight is the
    same, and so is the termination.

    ## Rendering
    A top view following the torso (1 m grid), the torso's trail, an arrow for the direction
    to run and the current x velocity.

    ## Version History
    * v0: initial version.
    """

    SCALE = 70.0

    def draw(self, canvas: Any) -> None:
        canvas.fill(drawing.BACKGROUND)
        torso = self.state["physics"][0, :2]
        self.draw_ant(canvas, torso, self.SCALE)
        direction = int(self.task.direction)
        width = canvas.get_width()
        drawing.arrow(canvas, (width / 2 - 70 * direction, 62), (width / 2 + 70 * direction, 62))
        label = "run forward (+x)" if direction == 1 else "run backward (-x)"
        drawing.text(canvas, label, (12, 12), 24, drawing.ARROW)
        vx = float(self.state["velocity"][0, 0])
        drawing.text(canvas, f"x velocity {vx:+.2f} m/s", (220, 12), 24, drawing.ACHIEVED)
        drawing.text(canvas, f"x {torso[0]:+.2f} m", (220, 36), 20, drawing.MUTED)
        self.status(canvas)


class AntGoalEnv(AntEnv):
    """
    ## Description
    Gymnasium's `Ant-v5` robot must walk to a goal position on the floor that the task fixes
    and the agent does not observe (the goal-position task of the MAML code, of ProMP and of
    PEARL). The physics is `Ant-v5`'s: the same model file (loaded from Gymnasium's assets),
    frame skip 5 (0.05 s per step), reset noise, observation and termination; only the
    reward differs.

    ## Action Space
    `Box(-1, 1, (8,), float32)`: hip and ankle torques; actions outside the box are clipped.

    ## Observation Space
    `Box(-inf, inf, (105,), float64)`, `Ant-v5`'s layout: `qpos[2:]` (13), `qvel` (14),
    clipped contact forces of the 13 non-world bodies (78). The x-y position is left out, as
    in v5, so the agent cannot see where it is either: it must find the goal from rewards.

    ## Rewards
    `-|xy - goal| + 4 * healthy - 0.5 * sum(clip(action)^2)
    - 5e-4 * sum(clip(cfrc_ext, -1, 1)^2)`, with `xy` the torso's position after the step
    and `|.|` the Euclidean distance, so that a goal's difficulty depends only on how far it
    is. The survive term is 4 per healthy step instead of v5's 1 because the distance term
    is negative: with 1, an ant standing 3 m from its goal would earn more by falling over
    (ending the episode) than by staying up. 4 exceeds every training goal's distance from
    the start, so staying healthy pays; the MAML code adds the same constant 4 to its goal
    reward for this reason. Control and contact costs are v5's.

    ## Starting State
    v5's: positions `init_qpos + U(-0.1, 0.1)`, velocities `0.1 * N(0, 1)`.

    ## Episode End
    Terminates when the ant is unhealthy (torso height outside [0.2, 1.0] or a non-finite
    state), as `Ant-v5`; truncated after 200 steps (registration).

    ## Arguments
    `gymnasium.make("metarl/AntGoal-v0", task={"goal": [1.5, -0.5]}, render_mode=...)`.
    Training goals are uniform in the disc of radius 3 m around the start; the `ood` split's
    in the ring 3 < r <= 4 m.

    ## Differences from the MAML code (rllab's `AntEnvRandGoal`) and PEARL
    The MAML code draws goals in the square [-3, 3]^2 and PEARL in the disc of radius 3; both
    use the L1 distance. The MAML code's other terms are those of its ant-direction task
    (rllab's model and 125 observations, control cost `0.005 * sum((a / 150)^2)`, survive
    0.05, same termination); PEARL does not terminate, has no survive term and charges
    `0.1 * sum(a^2)`.

    ## Rendering
    A fixed top view of the floor with the disc of training goals, the goal (green), the
    torso's trail and the current distance.

    ## Version History
    * v0: initial version.
    """

    SCALE = 50.0

    def draw(self, canvas: Any) -> None:
        import pygame

        canvas.fill(drawing.BACKGROUND)
        width, height = canvas.get_size()
        torso = self.state["physics"][0, :2]
        # Fixed on the start while the ant and its goal fit in the view, else centred between.
        goal = np.asarray(self.task.goal, dtype=np.float64)
        reach = max(np.abs(torso).max(), np.abs(goal).max()) + 0.7
        centre = np.zeros(2) if reach < width / 2 / self.SCALE else (torso + goal) / 2
        scale = self.SCALE

        def to_pixels(point: np.ndarray) -> tuple[int, int]:
            return (int(round(width / 2 + (point[0] - centre[0]) * scale)),
                    int(round(height / 2 - (point[1] - centre[1]) * scale)))

        pygame.draw.circle(canvas, (232, 236, 242), to_pixels(np.zeros(2)),
                           int(GOAL_RADIUS * scale))
        self.draw_ant(canvas, centre, scale)
        goal_px = to_pixels(goal)
        pygame.draw.circle(canvas, drawing.TARGET, goal_px, 12, 3)
        pygame.draw.circle(canvas, drawing.TARGET, goal_px, 4)
        distance = float(np.hypot(*(torso - goal)))
        drawing.text(canvas, f"goal ({goal[0]:+.1f}, {goal[1]:+.1f})", (12, 12), 24,
                     drawing.TARGET)
        drawing.text(canvas, f"distance {distance:.2f} m", (220, 12), 24, drawing.ACHIEVED)
        self.status(canvas)


class AntDir(DirectionTasks, AntFamily):
    name = "ant-dir"
    env_id = "metarl/AntDir-v0"
    env_class = AntDirEnv

    def task_reward(self, state: State, params: TaskArrays) -> np.ndarray:
        return params["direction"] * state["velocity"][:, 0]


class AntGoal(AntFamily):
    name = "ant-goal"
    env_id = "metarl/AntGoal-v0"
    task_type = GoalTask
    splits = ("test", "ood")
    env_class = AntGoalEnv
    healthy_reward = GOAL_SURVIVE_REWARD

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        return _goals_in_ring(0.0, GOAL_RADIUS, n, rng)

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        return _goals_in_ring(GOAL_RADIUS, OOD_RADIUS, n, rng)

    def task_params(self, tasks: Sequence[GoalTask]) -> TaskArrays:
        return {"goal": np.array([task.goal for task in tasks], dtype=np.float64).reshape(-1, 2)}

    def task_reward(self, state: State, params: TaskArrays) -> np.ndarray:
        offset = self.physics.qpos(state["physics"])[:, :2] - params["goal"]
        return -np.hypot(offset[:, 0], offset[:, 1])


def _goals_in_ring(inner: float, outer: float, n: int, rng: np.random.Generator
                   ) -> list[GoalTask]:
    """Goals uniform in area over ``inner < r <= outer``."""
    angle = rng.uniform(0.0, 2 * math.pi, size=n)
    radius = np.sqrt(outer**2 - rng.uniform(0.0, 1.0, size=n) * (outer**2 - inner**2))
    return [GoalTask(goal=(float(r * math.cos(a)), float(r * math.sin(a))))
            for r, a in zip(radius, angle)]
