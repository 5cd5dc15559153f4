"""The Gymnasium env of the Meta-World families: one Meta-World simulator set to a task's goal.

Meta-World's simulators are slow to build (about half a second: the model is compiled from
its XML file) and cheap to switch to another goal of the same environment (``set_task`` and
``reset``, a few milliseconds), and a simulator switched so behaves exactly like a new one
(a test checks it). So the simulators of closed envs are kept, per process, and handed to the
next env of the same environment class (:func:`lease`, :func:`release`): the batched envs a
sampler builds for each rollout reuse them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast

import gymnasium as gym
import numpy as np

from metarl.envs.metaworld.render import OffscreenRenderer
from metarl.family.drawing import CanvasWindow

MAX_IDLE_SIMULATORS = 200
"""Simulators kept per process for reuse (each holds 7-20 MiB); the least recently used
environment classes' go first."""
_IDLE: OrderedDict[type, list[Any]] = OrderedDict()


def lease(env_class: type) -> Any:
    """A simulator of ``env_class``: a kept one, or a new one."""
    idle = _IDLE.get(env_class)
    if not idle:
        return env_class()
    simulator = idle.pop()
    if not idle:  # no empty lists are kept: release's eviction takes from the oldest class
        del _IDLE[env_class]
    return simulator


def release(simulator: Any) -> None:
    """Keep ``simulator`` for the next :func:`lease` of its class (within the cap)."""
    env_class = type(simulator)
    _IDLE.setdefault(env_class, []).append(simulator)
    _IDLE.move_to_end(env_class)
    while idle_simulators() > MAX_IDLE_SIMULATORS:
        oldest = next(iter(_IDLE))
        _IDLE[oldest].pop(0).close()
        if not _IDLE[oldest]:
            del _IDLE[oldest]


def idle_simulators() -> int:
    """How many simulators this process keeps for reuse."""
    return sum(len(kept) for kept in _IDLE.values())


RENDER_SIZE = (480, 480)
"""Frame width and height, pixels."""
CAMERA = {"lookat": (0.0, 0.65, 0.12), "distance": 1.6, "azimuth": -45.0, "elevation": -25.0}
"""A free camera over the table from the front right (Meta-World's ``corner`` cameras give
upside-down pictures): the arm, the objects and the goal marker, which the agent does not
observe, in view."""


class MetaWorldEnv(CanvasWindow, gym.Env):
    """
    ## Description
    One task of a [Meta-World](https://metaworld.farama.org) benchmark (v3 environments,
    Meta-World 3.1.1 on MuJoCo 3.3.0): a Sawyer arm on a table must do what the environment
    asks (reach a point, push a puck, open a door, ...), with the goal that the task fixes
    hidden from the observation. Meta-World draws 50 goals per environment and split from
    a benchmark seed; a task names one (`{"benchmark": "ML1", "env": "reach-v3",
    "split": "test", "goal": 7, "seed": 0}`). Everything below is Meta-World's own.

    ## Action Space
    `Box(-1, 1, (4,), float32)`: the end effector's displacement in x, y, z (scaled by 1/100
    and clipped to the workspace) and the gripper's torque (-1 open, 1 closed).

    ## Observation Space
    `Box((39,), float64)`: the hand position (3), the gripper opening (1, in [0, 1]), up to two
    objects' positions and quaternions (14, zero-padded), the same 18 values from the previous
    step, and the goal position (3), always zero here (the ML benchmarks hide it). Bounds are
    Meta-World's: the hand positions within its hand space, the objects unbounded, the goal
    zero; Meta-World clips every step's observation to them.

    ## Rewards
    Meta-World's v2 reward (the default of its v3 environments), in [0, 10] per step.

    ## Success
    `info["success"]` (a bool here; Meta-World gives 0.0 or 1.0) says whether the task is
    achieved at that step; an episode succeeds if it is true at any step. Episodes do not end
    on success. The family declares `success_key = "success"`.

    ## Starting State
    Meta-World's reset for the goal: the objects and goal where the goal's random vector puts
    them, the hand at its start. It uses no randomness: `reset(seed=...)` seeds only
    `np_random`, and every episode of a task starts from the same state.

    ## Episode End
    Never terminates; truncated after 500 steps (registration; Meta-World refuses a 501st).

    ## Arguments
    `gymnasium.make("metarl/ML1-reach-v0", task={...}, render_mode="rgb_array")`;
    `reset(options={"task": ...})` switches to another task (of another environment too, for
    ML10 and ML45).

    ## Rendering
    `rgb_array` frames (480 x 480) from MuJoCo's offscreen renderer (EGL or OSMesa, see
    `metarl.envs.metaworld.render`), the goal marker included, with the environment, goal,
    step and success written on top; `human` shows them in a pygame window.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 80}
    render_size = RENDER_SIZE

    def __init__(self, family: Any, task: Any, render_mode: str | None = None,
                 resolved: tuple[type, Any] | None = None) -> None:
        """``family``: the :class:`~metarl.envs.metaworld.family.MetaWorldFamily`;
        ``resolved``: the task's environment class and Meta-World task object, if already
        known (in a worker process), else the family resolves them."""
        self.set_render_mode(render_mode)
        self.family = family
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self.simulator: Any = None
        self._renderer: OffscreenRenderer | None = None
        self._set_task(family.coerce_task(task), resolved)
        self.steps = 0
        self.episode_return = 0.0
        self.succeeded = False

    def _set_task(self, task: Any, resolved: tuple[type, Any] | None = None) -> None:
        env_class, meta_world_task = resolved or self.family.resolve(task)
        if type(self.simulator) is not env_class:
            self._close_renderer()
            if self.simulator is not None:
                release(self.simulator)
            self.simulator = lease(env_class)
        cast(Any, self.simulator).set_task(meta_world_task)
        self.task = task
        self._needs_reset = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.simulator is None:
            raise RuntimeError("this env is closed")
        if options and "task" in options:
            self._set_task(self.family.coerce_task(options["task"]))
        obs, _ = self.simulator.reset()
        self._needs_reset = False
        self.steps = 0
        self.episode_return = 0.0
        self.last_reward = 0.0
        self.succeeded = False
        if self.render_mode == "human":
            self.render()
        return np.asarray(obs, dtype=np.float64), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.simulator is None:
            raise RuntimeError("this env is closed")
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (after a new task too)")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (4,) or not np.isfinite(action).all():
            raise ValueError(f"a Meta-World action is 4 finite numbers, got {action!r}")
        if self.steps >= self.family.max_episode_steps:
            raise RuntimeError(f"the episode ended after {self.family.max_episode_steps} "
                               "steps (Meta-World's limit): call reset()")
        obs, reward, terminated, truncated, info = self.simulator.step(action)
        self.steps += 1
        self.last_reward = float(reward)
        self.episode_return += self.last_reward
        info = dict(info, success=bool(info["success"]))
        self.succeeded |= info["success"]
        if self.render_mode == "human":
            self.render()
        return np.asarray(obs, dtype=np.float64), self.last_reward, bool(terminated), \
            bool(truncated), info

    # --- drawing -----------------------------------------------------------------------------
    def frame(self) -> np.ndarray:
        """The scene from :data:`CAMERA`, ``[480, 480, 3]`` uint8, without the text."""
        if self._renderer is None:
            width, height = self.render_size
            self._renderer = OffscreenRenderer(self.simulator.model, width, height)
            camera = self._renderer.camera
            camera.lookat[:] = CAMERA["lookat"]
            camera.distance = CAMERA["distance"]
            camera.azimuth = CAMERA["azimuth"]
            camera.elevation = CAMERA["elevation"]
        return self._renderer.render(self.simulator.data)

    def draw(self, canvas: Any) -> None:
        """The frame with the task, step and success written on it (pygame)."""
        import pygame

        from metarl.family.drawing import font

        canvas.blit(pygame.surfarray.make_surface(np.transpose(self.frame(), (1, 0, 2))), (0, 0))
        task = self.task
        lines = [(f"{task.env}  goal {task.goal} ({task.split})", (255, 255, 255)),
                 (f"step {self.steps}", (230, 230, 230))]
        if self.succeeded:
            lines.append(("success", (90, 230, 110)))
        band = pygame.Surface((canvas.get_width(), 26 * len(lines) + 8), pygame.SRCALPHA)
        band.fill((0, 0, 0, 120))
        canvas.blit(band, (0, 0))
        for row, (text, colour) in enumerate(lines):
            canvas.blit(font(24).render(text, True, colour), (10, 6 + 26 * row))

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def close(self) -> None:
        """Hand the simulator back for reuse; the env cannot be used afterwards."""
        self._close_renderer()
        self.close_window()
        if self.simulator is not None:
            release(self.simulator)
            self.simulator = None
