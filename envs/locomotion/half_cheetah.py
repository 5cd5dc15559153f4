"""The MAML paper's half-cheetah families: run at a target velocity, or forward or backward.

Physics, observation and reset of Gymnasium's ``HalfCheetah-v5``; the task sets the reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.locomotion import drawing
from metarl.envs.locomotion.base import (
    DirectionTasks,
    LocomotionEnv,
    LocomotionFamily,
    box,
    check_real,
)
from metarl.family.array import State, TaskArrays
from metarl.family.rng import BatchRNG

CTRL_COST_WEIGHT = 0.1
"""HalfCheetah-v5's control cost weight (rllab's, used by MAML, is 0.05)."""
MAX_VELOCITY = 100.0
"""Largest target speed a task may ask for, in m/s."""
TRAIN_VELOCITIES = (0.0, 2.0)
"""Training target velocities are uniform in [0, 2] m/s (the MAML paper)."""
OOD_VELOCITIES = (2.0, 3.0)
"""The ``ood`` split's targets are uniform in (2, 3] m/s."""


@dataclass(frozen=True)
class VelocityTask:
    """A target forward velocity in m/s (negative: run backward at that speed)."""

    velocity: float

    def __post_init__(self) -> None:
        check_real("velocity", self.velocity, MAX_VELOCITY)


class HalfCheetahFamily(LocomotionFamily):
    """Shared dynamics of the half-cheetah families; subclasses define :meth:`task_reward`."""

    xml_file = "half_cheetah.xml"
    ctrl_cost_weight = CTRL_COST_WEIGHT
    observation_space = box((17,))
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        return {"physics": self.start_physics(rng), "velocity": np.zeros(rng.batch_size)}

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        ctrl = self.controls(action)
        physics = self.physics
        x_before = physics.qpos(state["physics"])[:, 0]
        stepped = physics.step(state["physics"], ctrl, state.get("active"))["physics"]
        velocity = (physics.qpos(stepped)[:, 0] - x_before) / physics.dt
        reward = self.task_reward(velocity, params) - self.ctrl_cost(ctrl)
        return (
            {"physics": stepped, "velocity": velocity},
            reward,
            np.zeros(len(velocity), dtype=bool),
        )

    def task_reward(self, velocity: np.ndarray, params: TaskArrays) -> np.ndarray:
        """The task's reward for forward velocities ``[B]``, before the control cost."""
        raise NotImplementedError

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        physics = self.physics
        return np.concatenate(
            [physics.qpos(state["physics"])[:, 1:], physics.qvel(state["physics"])], axis=1
        )


class HalfCheetahEnv(LocomotionEnv):
    """Side view of the half-cheetah with the task drawn over it (subclasses add the task)."""

    render_size = (600, 400)
    SCALE = 170.0
    """Pixels per metre in the scene."""
    GROUND_Y = 380

    def draw_scene(self, canvas: Any) -> None:
        import pygame

        width, _ = canvas.get_size()
        physics = self.family.physics
        qpos = physics.qpos(self.state["physics"])[0]
        data = physics.kinematics(qpos)
        camera_x = float(data.xpos[physics.model.body("torso").id, 0])
        scale, ground = self.SCALE, self.GROUND_Y

        def to_pixels(point: np.ndarray) -> tuple[int, int]:
            return (int(round(width / 2 + (point[0] - camera_x) * scale)),
                    int(round(ground - point[1] * scale)))

        pygame.draw.rect(canvas, drawing.GROUND, (0, ground, width, canvas.get_height() - ground))
        metres = np.arange(np.floor(camera_x - width / scale), np.ceil(camera_x + width / scale))
        for metre in metres:
            for fraction in (0.0, 0.5):
                x = to_pixels(np.array([metre + fraction, 0.0]))[0]
                top = ground - (8 if fraction else 14)
                pygame.draw.line(canvas, drawing.MUTED, (x, top), (x, ground), 2)
            if 0 <= to_pixels(np.array([metre, 0.0]))[0] < width:
                label = f"{metre:.0f} m"
                x = to_pixels(np.array([metre, 0.0]))[0]
                drawing.text(canvas, label, (x - drawing.font(17).size(label)[0] // 2,
                                             ground + 4), 17, drawing.INK)
        drawing.robot(canvas, physics.model, data, (0, 2), to_pixels, scale)

    def velocities(self) -> list[float]:
        return [float(entry["velocity"]) for entry in self.history[1:]]


class HalfCheetahVelEnv(HalfCheetahEnv):
    """
    ## Description
    Gymnasium's `HalfCheetah-v5` robot (a planar cheetah: torso, two legs of three segments,
    six torque-controlled joints) must run forward at a target velocity the task fixes and
    the agent does not observe: the MAML paper's "half-cheetah, goal velocity" task. The
    physics is `HalfCheetah-v5`'s: the same model file (loaded from Gymnasium's assets),
    frame skip 5 (0.05 s per step), reset noise and observation; only the reward differs.

    ## Action Space
    `Box(-1, 1, (6,), float32)`: torques of the back thigh, shin, foot and front thigh, shin,
    foot. Actions outside the box are clipped (MuJoCo clamps the controls the same way).

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`, `HalfCheetah-v5`'s layout: `qpos[1:]` (root height,
    root angle, six joint angles: 8 values) then `qvel` (9 values). The x position is left
    out, as in v5.

    ## Rewards
    `-|v - target| - 0.1 * sum(clip(action)^2)`, where `v` is the forward velocity over the
    step, `(x_after - x_before) / 0.05`, as `HalfCheetah-v5` computes it (`info["x_velocity"]`),
    and 0.1 is v5's control cost weight. The cost is charged on the action clipped to the box
    (v5 charges the action as given; the two agree inside the box): what lies outside has no
    effect on the robot, and a Gaussian policy's samples often do.

    ## Starting State
    v5's: positions `init_qpos + U(-0.1, 0.1)`, velocities `0.1 * N(0, 1)`.

    ## Episode End
    Never terminates; truncated after 200 steps (registration), the MAML horizon.

    ## Arguments
    `gymnasium.make("metarl/HalfCheetahVel-v0", task={"velocity": 1.2}, render_mode=...)`.
    Training targets are uniform in [0, 2] m/s; the `ood` split's in (2, 3].

    ## Differences from the MAML paper (rllab's `HalfCheetahEnvRand`)
    rllab used frame skip 1 (0.01 s per step, so its 200-step episodes last 2 s, here 10 s),
    observed 20 values (these 17 plus the torso's centre of mass), measured `v` as the
    torso's centre-of-mass velocity, charged `0.05 * sum(a^2)` for control and reset
    positions with `N(0, 0.01)` noise.

    ## Rendering
    A side view following the torso (ground ticks every 0.5 m), and a chart of the achieved
    velocity (blue) over the episode against the target (dashed green).

    ## Version History
    * v0: initial version.
    """

    def draw(self, canvas: Any) -> None:
        canvas.fill(drawing.BACKGROUND)
        target = float(self.task.velocity)
        velocities = self.velocities()
        low = min(-1.0, target - 1.0, *(velocities or [0.0]))
        high = max(3.0, target + 1.0, *(velocities or [0.0]))
        drawing.strip_chart(canvas, (10, 40, canvas.get_width() - 20, 120), velocities,
                            self.family.max_episode_steps, np.floor(low), np.ceil(high),
                            "forward velocity, m/s", target=target)
        now = velocities[-1] if velocities else 0.0
        drawing.text(canvas, f"target {target:.2f} m/s", (12, 12), 24, drawing.TARGET)
        drawing.text(canvas, f"now {now:+.2f} m/s", (200, 12), 24, drawing.ACHIEVED)
        drawing.text(canvas, f"step {self.step_count}", (500, 14), 20, drawing.MUTED)
        self.draw_scene(canvas)


class HalfCheetahDirEnv(HalfCheetahEnv):
    """
    ## Description
    Gymnasium's `HalfCheetah-v5` robot must run forward or backward, as the task says and
    the agent does not observe: the MAML paper's "half-cheetah, forward/backward" task. The
    physics is `HalfCheetah-v5`'s: the same model file (loaded from Gymnasium's assets),
    frame skip 5 (0.05 s per step), reset noise and observation; only the reward differs.

    ## Action Space
    `Box(-1, 1, (6,), float32)`: the six joint torques; actions outside the box are clipped.

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`, `HalfCheetah-v5`'s layout: `qpos[1:]` (8) then
    `qvel` (9).

    ## Rewards
    `direction * v - 0.1 * sum(clip(action)^2)` with `v` the forward velocity over the step
    (`HalfCheetah-v5`'s `info["x_velocity"]`). For `direction = 1` and actions inside the box
    this is exactly `HalfCheetah-v5`'s reward (the cost is charged on the clipped action).

    ## Starting State
    v5's: positions `init_qpos + U(-0.1, 0.1)`, velocities `0.1 * N(0, 1)`.

    ## Episode End
    Never terminates; truncated after 200 steps (registration).

    ## Arguments
    `gymnasium.make("metarl/HalfCheetahDir-v0", task={"direction": -1}, render_mode=...)`.
    Tasks are forward (1) or backward (-1) with equal probability; there is no `ood` split.

    ## Differences from the MAML paper (rllab's `HalfCheetahEnvRandDirec`)
    rllab used frame skip 1 (0.01 s per step), observed 20 values (these plus the torso's
    centre of mass), measured `v` as the torso's centre-of-mass velocity, charged
    `0.05 * sum(a^2)` for control and reset positions with `N(0, 0.01)` noise.

    ## Rendering
    A side view following the torso with an arrow for the direction to run, and a chart of
    the velocity (blue) over the episode.

    ## Version History
    * v0: initial version.
    """

    def draw(self, canvas: Any) -> None:
        canvas.fill(drawing.BACKGROUND)
        direction = int(self.task.direction)
        velocities = self.velocities()
        bound = max(4.0, *(abs(v) for v in velocities or [0.0]))
        drawing.strip_chart(canvas, (10, 40, canvas.get_width() - 20, 120), velocities,
                            self.family.max_episode_steps, -np.ceil(bound), np.ceil(bound),
                            "forward velocity, m/s (shaded: rewarded)",
                            rewarded=(0.0, np.inf) if direction == 1 else (-np.inf, 0.0))
        now = velocities[-1] if velocities else 0.0
        label = "run forward" if direction == 1 else "run backward"
        drawing.text(canvas, label, (12, 12), 24, drawing.ARROW)
        drawing.text(canvas, f"now {now:+.2f} m/s", (200, 12), 24, drawing.ACHIEVED)
        drawing.text(canvas, f"step {self.step_count}", (500, 14), 20, drawing.MUTED)
        self.draw_scene(canvas)
        centre = canvas.get_width() / 2
        drawing.arrow(canvas, (centre - 60 * direction, 185), (centre + 60 * direction, 185))


class HalfCheetahVel(HalfCheetahFamily):
    name = "halfcheetah-vel"
    env_id = "metarl/HalfCheetahVel-v0"
    task_type = VelocityTask
    splits = ("test", "ood")
    env_class = HalfCheetahVelEnv

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        return [VelocityTask(float(v)) for v in rng.uniform(*TRAIN_VELOCITIES, size=n)]

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        low, high = OOD_VELOCITIES
        # uniform in (low, high]: reflect numpy's [low, high)
        return [VelocityTask(float(high + low - v)) for v in rng.uniform(low, high, size=n)]

    def task_params(self, tasks: Sequence[VelocityTask]) -> TaskArrays:
        return {"velocity": np.array([task.velocity for task in tasks], dtype=np.float64)}

    def task_reward(self, velocity: np.ndarray, params: TaskArrays) -> np.ndarray:
        return -np.abs(velocity - params["velocity"])


class HalfCheetahDir(DirectionTasks, HalfCheetahFamily):
    name = "halfcheetah-dir"
    env_id = "metarl/HalfCheetahDir-v0"
    env_class = HalfCheetahDirEnv

    def task_reward(self, velocity: np.ndarray, params: TaskArrays) -> np.ndarray:
        return params["direction"] * velocity
