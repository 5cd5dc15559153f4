"""CartPoleTasks: balance a pole over a hidden target, on a cart whose push may be reversed.

Gymnasium's cart-pole equations (Euler integration) with per-task physics, a hidden target
position the cart must hold and an actuator sign that reverses the pushes in half the tasks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family.array import ArrayEnv, ArrayFamily, State, TaskArrays
from metarl.family.drawing import font
from metarl.family.rng import BatchRNG
from metarl.registry import register_family

TAU = 0.02
"""Seconds per step (Gymnasium's value)."""
X_THRESHOLD = 2.4
"""The episode ends when the cart centre leaves [-2.4, 2.4]."""
THETA_THRESHOLD = 12 * 2 * math.pi / 360
"""The episode ends when the pole leans more than 12 degrees."""
TARGET_WIDTH = 0.5
"""Length scale of the reward around the target, in metres."""
START_NOISE = 0.05
"""Each start-state component is uniform in [-0.05, 0.05]."""

MAX_PHYSICS = 1000.0
"""Largest value of a physical parameter (gravity, masses, length, force) a task may have."""
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "gravity": (8.0, 12.0),
    "cart_mass": (0.5, 1.5),
    "pole_mass": (0.05, 0.2),
    "pole_half_length": (0.3, 0.7),
    "force_mag": (7.0, 13.0),
}
OOD_RANGES: dict[str, tuple[float, float]] = {
    "gravity": (8.0, 12.0),
    "cart_mass": (1.5, 2.0),
    "pole_mass": (0.2, 0.3),
    "pole_half_length": (0.7, 1.0),
    "force_mag": (7.0, 13.0),
}
TRAIN_TARGET = 1.0
"""Training targets are uniform in [-1, 1]."""
OOD_TARGET = 1.6
"""Out-of-distribution targets have 1 < |target| <= 1.6."""

ORACLE_WEIGHTS = (10.0, 1.0, 100.0, 1.0)
"""The oracle's LQR state weights on (x - target, x_dot, theta, theta_dot)."""
ORACLE_FORCE_WEIGHT = 0.01
"""The oracle's LQR weight on the squared force."""
ORACLE_OFFSET_LIMIT = 1.0
"""The oracle's LQR sees the cart's offset from the target clipped to this many metres."""
ORACLE_LOOKAHEAD = 100
"""Steps the oracle simulates ahead to compare its two actions."""


@dataclass(frozen=True)
class CartPoleTask:
    """One cart-pole: its physics, the direction its actuator pushes, and the hidden target.

    The defaults are Gymnasium's ``CartPole`` physics with the target at the track centre.
    """

    gravity: float = 9.8
    cart_mass: float = 1.0
    pole_mass: float = 0.1
    pole_half_length: float = 0.5
    force_mag: float = 10.0
    actuator_sign: int = 1
    """+1: action 1 pushes right (as Gymnasium); -1: action 1 pushes left."""
    target: float = 0.0
    """Cart position the reward is centred on (not observed)."""

    def __post_init__(self) -> None:
        if self.actuator_sign not in (-1, 1):
            raise ValueError(f"actuator_sign must be -1 or 1, got {self.actuator_sign!r}")
        for name in ("gravity", "cart_mass", "pole_mass", "pole_half_length", "force_mag"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and 0 < float(value) <= MAX_PHYSICS):
                raise ValueError(f"{name} must be a number in (0, {MAX_PHYSICS:g}], got "
                                 f"{value!r}")
        if not abs(self.target) < X_THRESHOLD:
            raise ValueError(
                f"target must lie on the track (-{X_THRESHOLD}, {X_THRESHOLD}), got {self.target!r}"
            )

    @property
    def total_mass(self) -> float:
        return self.pole_mass + self.cart_mass

    @property
    def polemass_length(self) -> float:
        return self.pole_mass * self.pole_half_length

    @property
    def pole_length(self) -> float:
        return 2 * self.pole_half_length


_PARAM_NAMES = (
    "gravity",
    "cart_mass",
    "pole_mass",
    "pole_half_length",
    "force_mag",
    "actuator_sign",
    "target",
    "total_mass",
    "polemass_length",
)


class CartPoleTasksEnv(ArrayEnv):
    """
    ## Description
    Gymnasium's cart-pole (a pole on an un-actuated joint over a cart on a frictionless
    track, Euler integration at 0.02 s) where every task sets the physics (gravity, cart and
    pole masses, pole length, force magnitude) and two things the agent cannot observe:

    - the **actuator sign**: in half the tasks action 1 pushes left instead of right, so a
      balancing policy learned for one sign drops the pole within a few steps under the other;
    - the **target** cart position the reward is centred on, so a policy that balances at
      the centre earns only part of the reward.

    A memoryless policy cannot tell either from one observation, and no single policy does
    well across tasks; the rewards of a few episodes reveal both (which pushes keep the pole
    up, where the reward is higher), which is what a meta-learner must exploit. On 40 test
    tasks a bang-bang LQR controller scores, out of at most 150: 51 with the better single
    sign and the target at 0, 79 knowing the sign but not the target, 124 knowing both
    (the physics within the training ranges matter little; outside them they do).

    ## Action Space
    `Discrete(2)`: 0 pushes with force `-actuator_sign * force_mag`, 1 with
    `+actuator_sign * force_mag` (along the track, positive to the right). Two actions, as in
    Gymnasium, keep a Categorical policy's gradient low-variance, and a reversed actuator is
    then just a swap of the two actions, which the first policy-gradient step points toward.

    ## Observation Space
    | Num | Observation           | Min     | Max    |
    |-----|-----------------------|---------|--------|
    | 0   | Cart Position         | -4.8    | 4.8    |
    | 1   | Cart Velocity         | -Inf    | Inf    |
    | 2   | Pole Angle            | -0.418  | 0.418  |
    | 3   | Pole Angular Velocity | -Inf    | Inf    |

    ## Rewards
    `exp(-((x - target) / 0.5) ** 2 / 2)` after every step, including the terminating one:
    1 with the cart on the target, about 0.14 a metre away. Rewards are never negative, so
    keeping the pole up always pays.

    ## Starting State
    Every state component uniform in [-0.05, 0.05], as in Gymnasium.

    ## Episode End
    Terminates when the pole leans more than 12 degrees or the cart centre leaves
    [-2.4, 2.4]; truncated after 150 steps (registration).

    ## Arguments
    `gymnasium.make("metarl/CartPoleTasks-v0", task={...}, render_mode=...)` with a task dict
    of `gravity`, `cart_mass`, `pole_mass`, `pole_half_length`, `force_mag`,
    `actuator_sign` (-1 or 1) and `target`. `CartPoleTask()` is Gymnasium's CartPole physics
    with the target at 0. Training tasks draw gravity in [8, 12], cart mass in [0.5, 1.5],
    pole mass in [0.05, 0.2], pole half-length in [0.3, 0.7], force in [7, 13], the sign
    at random and the target in [-1, 1]; the `ood` split has heavier carts and poles, longer
    poles, and targets with 1 < |target| <= 1.6.

    ## Rendering
    The track with its ends and metre ticks, the cart (an orange arrow for the last push) and
    pole, the target as a green line with its reward band of +-0.5 m, and the task's
    parameters in a line of text.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 50}
    render_size = (600, 400)

    def draw(self, canvas: Any) -> None:
        import pygame

        width, height = canvas.get_size()
        scale = width / (2 * X_THRESHOLD + 0.8)
        track_y = int(height * 0.75)
        top = 50
        task = self.task
        small = font(18)

        def to_x(position: float) -> int:
            return int(round(width / 2 + position * scale))

        canvas.fill((248, 248, 244))
        target = to_x(task.target)
        band = int(TARGET_WIDTH * scale)
        shade = pygame.Surface((2 * band, track_y - top), pygame.SRCALPHA)
        shade.fill((60, 170, 80, 40))
        canvas.blit(shade, (target - band, top))
        pygame.draw.line(canvas, (40, 150, 60), (target, top), (target, track_y), 2)
        marker = [(target, track_y + 6), (target - 8, track_y + 20), (target + 8, track_y + 20)]
        pygame.draw.polygon(canvas, (40, 150, 60), marker)

        left, right = to_x(-X_THRESHOLD), to_x(X_THRESHOLD)
        pygame.draw.line(canvas, (60, 60, 60), (left, track_y), (right, track_y), 3)
        for end in (left, right):
            pygame.draw.line(canvas, (170, 40, 40), (end, track_y - 12), (end, track_y + 12), 4)
        for metre in range(-2, 3):
            tick = to_x(metre)
            pygame.draw.line(canvas, (150, 150, 150), (tick, track_y), (tick, track_y + 26), 1)
            label = small.render(f"{metre:+d} m" if metre else "0", True, (120, 120, 120))
            canvas.blit(label, (tick - label.get_width() // 2, track_y + 30))

        x = float(self.state["x"][0])
        theta = float(self.state["theta"][0])
        force = float(self.state["force"][0])
        cart_x = to_x(x)
        cart = pygame.Rect(cart_x - 25, track_y - 32, 50, 28)
        if force:
            tip_x = cart_x + (45 if force > 0 else -45)
            arrow_y = cart.centery
            pygame.draw.line(canvas, (220, 120, 30), (cart_x, arrow_y), (tip_x, arrow_y), 4)
            head = -10 if force > 0 else 10
            pygame.draw.polygon(
                canvas,
                (220, 120, 30),
                [(tip_x, arrow_y), (tip_x + head, arrow_y - 7), (tip_x + head, arrow_y + 7)],
            )
        pygame.draw.rect(canvas, (35, 35, 45), cart, border_radius=4)
        for wheel in (cart.left + 10, cart.right - 10):
            pygame.draw.circle(canvas, (90, 90, 90), (wheel, track_y - 2), 5)
        axle = (cart_x, cart.top + 4)
        pole = task.pole_length * scale
        tip = (axle[0] + pole * math.sin(theta), axle[1] - pole * math.cos(theta))
        pygame.draw.line(canvas, (202, 152, 101), axle, tip, 9)
        pygame.draw.circle(canvas, (129, 132, 203), axle, 5)

        text = (
            f"g {task.gravity:.1f}  cart {task.cart_mass:.2f} kg  pole {task.pole_mass:.2f} kg, "
            f"{task.pole_length:.2f} m  force {task.force_mag:.1f} N  "
            f"sign {task.actuator_sign:+d}  target {task.target:+.2f} m"
        )
        canvas.blit(font(21).render(text, True, (30, 30, 30)), (10, 12))


class CartPoleTasks(ArrayFamily):
    name = "cartpole-tasks"
    env_id = "metarl/CartPoleTasks-v0"
    task_type = CartPoleTask
    max_episode_steps = 150
    splits = ("test", "ood")
    env_class = CartPoleTasksEnv
    observation_space = gym.spaces.Box(
        -np.array([2 * X_THRESHOLD, np.inf, 2 * THETA_THRESHOLD, np.inf], dtype=np.float32),
        np.array([2 * X_THRESHOLD, np.inf, 2 * THETA_THRESHOLD, np.inf], dtype=np.float32),
        dtype=np.float32,
    )
    action_space = gym.spaces.Discrete(2)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[CartPoleTask]:
        targets = rng.uniform(-TRAIN_TARGET, TRAIN_TARGET, size=n)
        return _tasks(TRAIN_RANGES, targets, rng)

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[CartPoleTask]:
        magnitudes = rng.uniform(TRAIN_TARGET, OOD_TARGET, size=n)
        targets = np.where(rng.random(n) < 0.5, -magnitudes, magnitudes)
        return _tasks(OOD_RANGES, targets, rng)

    def task_params(self, tasks: Sequence[CartPoleTask]) -> TaskArrays:
        params = {
            key: np.array([getattr(task, key) for task in tasks], dtype=np.float64)
            for key in _PARAM_NAMES
        }
        # Derived, for the oracle: the LQR gains of each task's linearised dynamics, [n, 4].
        params["lqr_gain"] = lqr_gains(params)
        return params

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        start = rng.uniform(-START_NOISE, START_NOISE, size=(4,))
        return {
            "x": start[:, 0],
            "x_dot": start[:, 1],
            "theta": start[:, 2],
            "theta_dot": start[:, 3],
            "force": np.zeros(rng.batch_size),
        }

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        action = np.asarray(action).reshape(-1)
        if not np.isin(action, (0, 1)).all():
            raise ValueError(f"cart-pole actions must be 0 or 1, got {action!r}")
        return _dynamics(state, np.where(action == 1, 1.0, -1.0) * params["actuator_sign"], params)

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        return np.stack([state["x"], state["x_dot"], state["theta"], state["theta_dot"]], axis=-1)

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """A controller that knows the physics, the actuator sign and the target.

        Its base is LQR on the dynamics linearised about the upright pole over the target
        (``lqr_gains``), made bang-bang: push the way the LQR force points. The oracle
        improves on it by one step of look-ahead: for each of the two actions it simulates the
        task's exact dynamics for ``ORACLE_LOOKAHEAD`` steps, the base controller acting after
        the first, and takes the action whose simulated rewards (nothing after a fall) sum
        higher. A strong controller, not a proven best: its return is a lower bound on the
        best return given the task.
        """
        batch = state["x"].shape[0]
        both = {key: np.concatenate([value, value]) for key, value in state.items()}
        twice = {key: np.concatenate([value, value]) for key, value in params.items()}
        # Action 0 in the first half of the columns, action 1 in the second.
        push = np.repeat([-1.0, 1.0], batch) * twice["actuator_sign"]
        total = np.zeros(2 * batch)
        alive = np.ones(2 * batch, dtype=bool)
        for _ in range(ORACLE_LOOKAHEAD):
            both, reward, terminated = _dynamics(both, push, twice)
            total += np.where(alive, reward, 0.0)
            alive &= ~terminated
            push = np.where(_lqr_force(both, twice) > 0, 1.0, -1.0)
        return (total[batch:] > total[:batch]).astype(np.int64)


def _dynamics(
    state: State, push: np.ndarray, params: TaskArrays
) -> tuple[State, np.ndarray, np.ndarray]:
    """One step with the cart pushed right (``push`` 1) or left (-1): :meth:`transition`'s
    dynamics without its checks of the actions."""
    x, x_dot, theta, theta_dot = state["x"], state["x_dot"], state["theta"], state["theta_dot"]
    force = push * params["force_mag"]
    costheta = np.cos(theta)
    sintheta = np.sin(theta)
    total_mass = params["total_mass"]
    temp = (force + params["polemass_length"] * np.square(theta_dot) * sintheta) / total_mass
    thetaacc = (params["gravity"] * sintheta - costheta * temp) / (
        params["pole_half_length"]
        * (4.0 / 3.0 - params["pole_mass"] * np.square(costheta) / total_mass)
    )
    xacc = temp - params["polemass_length"] * thetaacc * costheta / total_mass
    next_state = {
        "x": x + TAU * x_dot,
        "x_dot": x_dot + TAU * xacc,
        "theta": theta + TAU * theta_dot,
        "theta_dot": theta_dot + TAU * thetaacc,
        "force": force,
    }
    terminated = (np.abs(next_state["x"]) > X_THRESHOLD) | (
        np.abs(next_state["theta"]) > THETA_THRESHOLD
    )
    offset = (next_state["x"] - params["target"]) / TARGET_WIDTH
    return next_state, np.exp(-0.5 * np.square(offset)), terminated


def _linearised(params: TaskArrays) -> tuple[np.ndarray, np.ndarray]:
    """The one-step dynamics ``e' = A e + B force`` about the upright pole, ``[n, 4, 4]`` and
    ``[n, 4, 1]``, for ``e = (x - target, x_dot, theta, theta_dot)`` (Euler, as the env)."""
    gravity, total_mass = params["gravity"], params["total_mass"]
    half_length, polemass_length = params["pole_half_length"], params["polemass_length"]
    lever = half_length * (4.0 / 3.0 - params["pole_mass"] / total_mass)
    n = gravity.shape[0]
    a = np.zeros((n, 4, 4))
    a[:, 0, 1] = a[:, 2, 3] = 1.0
    a[:, 3, 2] = gravity / lever
    a[:, 1, 2] = -polemass_length * gravity / (total_mass * lever)
    b = np.zeros((n, 4, 1))
    b[:, 3, 0] = -1.0 / (total_mass * lever)
    b[:, 1, 0] = 1.0 / total_mass + polemass_length / (total_mass**2 * lever)
    return np.eye(4) + TAU * a, TAU * b


def lqr_gains(params: TaskArrays) -> np.ndarray:
    """Discrete LQR gains ``K[n, 4]`` (force ``-K @ e``) for the linearised dynamics of
    ``_linearised``, weights ``ORACLE_WEIGHTS`` and ``ORACLE_FORCE_WEIGHT``: the Riccati
    solution by the structure-preserving doubling algorithm, batched over tasks."""
    a, b = _linearised(params)
    n = a.shape[0]
    identity = np.eye(4)
    bt = np.swapaxes(b, 1, 2)
    g = b @ bt / ORACLE_FORCE_WEIGHT
    h = np.tile(np.diag(ORACLE_WEIGHTS), (n, 1, 1))
    ak = a
    for _ in range(40):  # converges quadratically: about 10 iterations
        w = np.linalg.inv(identity + g @ h)
        ak, g, h = (ak @ w @ ak, g + ak @ w @ g @ np.swapaxes(ak, 1, 2),
                    h + np.swapaxes(ak, 1, 2) @ h @ w @ ak)
        if np.abs(ak).max() < 1e-30:  # later updates change nothing
            break
    gain = np.linalg.solve(ORACLE_FORCE_WEIGHT + bt @ h @ b, bt @ h @ a)
    return gain[:, 0, :]


def _lqr_force(state: State, params: TaskArrays) -> np.ndarray:
    """The LQR force ``-K @ e`` (positive to the right), the cart's offset from the target
    clipped to ``ORACLE_OFFSET_LIMIT``."""
    gain = params["lqr_gain"]
    offset = np.minimum(np.maximum(state["x"] - params["target"], -ORACLE_OFFSET_LIMIT),
                        ORACLE_OFFSET_LIMIT)
    return -(gain[:, 0] * offset + gain[:, 1] * state["x_dot"] + gain[:, 2] * state["theta"]
             + gain[:, 3] * state["theta_dot"])


def _tasks(
    ranges: dict[str, tuple[float, float]], targets: np.ndarray, rng: np.random.Generator
) -> list[CartPoleTask]:
    n = len(targets)
    physics = {key: rng.uniform(low, high, size=n) for key, (low, high) in ranges.items()}
    signs = np.where(rng.random(n) < 0.5, -1, 1)
    return [
        CartPoleTask(
            **{key: round(float(values[i]), 4) for key, values in physics.items()},
            actuator_sign=int(signs[i]),
            target=round(float(targets[i]), 4),
        )
        for i in range(n)
    ]


register_family(CartPoleTasks.name, CartPoleTasks)
