"""Random tabular MDPs: each task is a small MDP with unknown transitions and rewards (RL^2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family.array import ArrayEnv, ArrayFamily, State, TaskArrays
from metarl.family.drawing import font
from metarl.family.rng import BatchRNG
from metarl.registry import register_family

N_STATES = 10
N_ACTIONS = 5
HORIZON = 10
REWARD_MEAN_PRIOR = (1.0, 1.0)
"""Mean and standard deviation of the normal prior over each (state, action) mean reward."""
REWARD_NOISE = 1.0
"""Standard deviation of an observed reward around its mean."""


@dataclass(frozen=True)
class TabularMDPTask:
    """An MDP: probabilities ``transitions[s][a][s']`` and mean rewards ``reward_means[s][a]``."""

    transitions: tuple[tuple[tuple[float, ...], ...], ...]
    reward_means: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        transitions = np.asarray(self.transitions, dtype=np.float64)
        means = np.asarray(self.reward_means, dtype=np.float64)
        if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
            raise ValueError(
                "transitions must have shape [states, actions, states], "
                f"got shape {transitions.shape}"
            )
        if means.shape != transitions.shape[:2]:
            raise ValueError(
                f"reward_means must have shape {transitions.shape[:2]} (states, actions), "
                f"got shape {means.shape}"
            )
        bad = (transitions < 0).any(axis=-1) | ~np.isclose(transitions.sum(axis=-1), 1.0, atol=1e-6)
        if bad.any():
            s, a = np.argwhere(bad)[0]
            raise ValueError(
                f"transitions[{s}][{a}] = {transitions[s, a].tolist()} is not a probability "
                "distribution: entries must be >= 0 and sum to 1"
            )
        if not np.all(np.isfinite(means)):
            raise ValueError(f"reward_means must be finite, got {means.tolist()}")
        object.__setattr__(self, "transitions", _tuples(transitions))
        object.__setattr__(self, "reward_means", _tuples(means))

    @property
    def n_states(self) -> int:
        return len(self.transitions)

    @property
    def n_actions(self) -> int:
        return len(self.reward_means[0])

    @property
    def best_rewards(self) -> tuple[float, ...]:
        """The largest mean reward available in each state."""
        return tuple(max(row) for row in self.reward_means)


def optimal_action_values(transitions: np.ndarray, reward_means: np.ndarray,
                          horizon: int = HORIZON) -> np.ndarray:
    """Finite-horizon optimal action values ``Q[n, t, s, a]`` by backward value iteration.

    ``transitions`` is ``[n, S, A, S]`` and ``reward_means`` ``[n, S, A]``; ``Q[:, t, s, a]`` is
    the best expected sum of the rewards of steps ``t .. horizon - 1`` after taking ``a`` in
    ``s`` at step ``t``. The best expected episode return from the start is
    ``Q[:, 0, 0].max(-1)``.
    """
    n, states, actions = reward_means.shape
    values = np.zeros((n, horizon, states, actions))
    future = np.zeros((n, states))
    for t in reversed(range(horizon)):
        values[:, t] = reward_means + np.einsum("nsaj,nj->nsa", transitions, future)
        future = values[:, t].max(axis=-1)
    return values


def _tuples(array: np.ndarray) -> Any:
    if array.ndim == 1:
        return tuple(array.tolist())
    return tuple(_tuples(row) for row in array)


def _reward_colour(value: float) -> tuple[int, int, int]:
    """Red below 2 (about the typical best of 5 mean rewards) through white to green above."""
    t = float(np.clip((value - 2.0) / 1.5, -1.0, 1.0))
    if t < 0:
        return 255, int(255 + 95 * t), int(255 + 105 * t)
    return int(255 - 125 * t), int(255 - 40 * t), int(255 - 115 * t)


class TabularMDPEnv(ArrayEnv):
    """
    ## Description
    A random MDP with 10 states and 5 actions, as in RL^2 (Duan et al., 2016). Each task draws
    the transition distribution of every (state, action) pair from a flat Dirichlet(1) and its
    mean reward from N(1, 1). The agent sees only its state, so it must learn which actions
    pay and where they lead from the rewards of its earlier episodes.

    ## Action Space
    `Discrete(5)`.

    ## Observation Space
    `Box(0, 1, (10,), float32)`: the one-hot of the current state.

    ## Starting State
    Every episode starts in state 0.

    ## Rewards
    The mean reward of the (state, action) pair plus unit Gaussian noise:
    `r ~ N(reward_means[s][a], 1)`. The next state is drawn from `transitions[s][a]`.

    ## Episode End
    Never terminates; truncated after 10 steps (registration).

    ## Arguments
    `gymnasium.make("metarl/TabularMDP-v0", task={"transitions": [...], "reward_means": [...]},
    render_mode=...)` with `transitions` nested as [state][action][next state] and
    `reward_means` as [state][action]. There is only a `test` split.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}
    render_size = (520, 540)

    def draw(self, canvas: Any) -> None:
        import pygame

        width, height = canvas.get_size()
        ink = (40, 40, 40)
        accent = (230, 120, 20)
        current = int(self.state["state"][0])
        previous = int(self.state["previous"][0])
        action = int(self.state["action"][0])
        step = int(self.state["step"][0])

        canvas.fill((245, 245, 240))
        header = f"step {step}/{HORIZON}    return {float(self.state['return'][0]):+.2f}"
        if step > 0:
            header += f"    last: action {action}, reward {float(self.state['reward'][0]):+.2f}"
        canvas.blit(font(24).render(header, True, ink), (14, 12))
        legend = (
            "number: state   +x: best mean reward there (fill: red low, green high)",
            "orange: the agent's state and its last move (action aN)",
        )
        for row, line in enumerate(legend):
            canvas.blit(font(18).render(line, True, (90, 90, 90)), (14, height - 44 + 20 * row))

        n = self.task.n_states
        cx, cy = width / 2, height / 2 + 5
        ring = min(width, height - 70) / 2 - 75
        radius = 28
        angles = 2 * np.pi * np.arange(n) / n
        centres = np.stack([cx + ring * np.sin(angles), cy - ring * np.cos(angles)], axis=1)

        if previous >= 0:
            if previous != current:
                start, end = centres[previous], centres[current]
                direction = (end - start) / np.linalg.norm(end - start)
                tail, tip = start + direction * radius, end - direction * (radius + 2)
                pygame.draw.line(canvas, accent, tail, tip, 4)
                normal = np.array([-direction[1], direction[0]])
                head = [tip, tip - 14 * direction + 7 * normal, tip - 14 * direction - 7 * normal]
                pygame.draw.polygon(canvas, accent, [tuple(p) for p in head])
                label_at = (tail + tip) / 2 + 14 * normal
            else:
                outward = (centres[current] - (cx, cy)) / ring
                loop = centres[current] + outward * (radius + 10)
                pygame.draw.circle(canvas, accent, loop, 14, 4)
                label_at = loop + outward * 28
            label = font(22).render(f"a{action}", True, accent)
            canvas.blit(label, label_at - np.array(label.get_size()) / 2)

        for state, best in enumerate(self.task.best_rewards):
            centre = centres[state]
            pygame.draw.circle(canvas, _reward_colour(best), centre, radius)
            pygame.draw.circle(canvas, ink, centre, radius, 2)
            if state == current:
                pygame.draw.circle(canvas, accent, centre, radius + 5, 5)
            text = font(26).render(str(state), True, ink)
            canvas.blit(text, centre - np.array(text.get_size()) / 2 - (0, 6))
            value = font(17).render(f"{best:+.1f}", True, (70, 70, 70))
            canvas.blit(value, centre - np.array(value.get_size()) / 2 + (0, 12))


class TabularMDP(ArrayFamily):
    """Random 10-state, 5-action MDPs with Dirichlet(1) transitions and N(1, 1) mean rewards."""

    name = "tabular-mdp"
    env_id = "metarl/TabularMDP-v0"
    task_type = TabularMDPTask
    max_episode_steps = HORIZON
    env_class = TabularMDPEnv
    observation_space = gym.spaces.Box(0.0, 1.0, shape=(N_STATES,), dtype=np.float32)
    action_space = gym.spaces.Discrete(N_ACTIONS)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[TabularMDPTask]:
        tasks = []
        for _ in range(n):
            transitions = rng.dirichlet(np.ones(N_STATES), size=(N_STATES, N_ACTIONS))
            means = rng.normal(*REWARD_MEAN_PRIOR, size=(N_STATES, N_ACTIONS))
            tasks.append(TabularMDPTask(transitions=_tuples(transitions),
                                        reward_means=_tuples(means)))
        return tasks

    def task_params(self, tasks: Sequence[TabularMDPTask]) -> TaskArrays:
        for task in tasks:
            if (task.n_states, task.n_actions) != (N_STATES, N_ACTIONS):
                raise ValueError(
                    f"task has {task.n_states} states and {task.n_actions} actions, family "
                    f"{self.name!r} expects {N_STATES} and {N_ACTIONS}"
                )
        transitions = np.array([task.transitions for task in tasks], dtype=np.float64)
        means = np.array([task.reward_means for task in tasks], dtype=np.float64)
        transitions = transitions.reshape(-1, N_STATES, N_ACTIONS, N_STATES)
        means = means.reshape(-1, N_STATES, N_ACTIONS)
        return {
            "transitions": transitions,
            "reward_means": means,
            # Derived, for the oracle: optimal action values [n, HORIZON, S, A].
            "optimal_q": optimal_action_values(transitions, means),
        }

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        batch = rng.batch_size
        return {
            "state": np.zeros(batch, dtype=np.int64),
            "previous": np.full(batch, -1, dtype=np.int64),
            "action": np.full(batch, -1, dtype=np.int64),
            "reward": np.zeros(batch),
            "return": np.zeros(batch),
            "step": np.zeros(batch, dtype=np.int64),
        }

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        action = action.astype(np.int64).reshape(-1)
        if np.any((action < 0) | (action >= N_ACTIONS)):
            raise ValueError(f"actions must be in [0, {N_ACTIONS}), got {action!r}")
        batch = np.arange(action.size)
        current = state["state"]
        next_state = rng.categorical(params["transitions"][batch, current, action])
        mean = params["reward_means"][batch, current, action]
        reward = mean + REWARD_NOISE * rng.normal()
        return (
            {
                "state": next_state,
                "previous": current,
                "action": action,
                "reward": reward,
                "return": state["return"] + reward,
                "step": state["step"] + 1,
            },
            reward,
            np.zeros(action.size, dtype=bool),
        )

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        return state["state"][:, None] == np.arange(N_STATES)

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """Act optimally with the task's true transitions and mean rewards: the action of
        largest finite-horizon optimal value (``optimal_action_values``, backward value
        iteration over the 10 steps) in the current state at the current step, which the
        state counts. Reward noise has mean zero, so this policy's expected return is exactly
        the best one, ``optimal_q[:, 0, 0].max(-1)`` (start state 0), computed, not sampled."""
        batch = np.arange(state["state"].size)
        step = np.minimum(state["step"], HORIZON - 1)
        return np.argmax(params["optimal_q"][batch, step, state["state"]], axis=-1)


register_family(TabularMDP.name, TabularMDP)
