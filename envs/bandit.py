"""Bernoulli bandits: each task hides the payoff probability of every arm (RL^2's bandits)."""

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

PULLS = 10
"""Pulls per episode."""
OOD_BETA = (1.0, 5.0)
"""Beta(a, b) of the `ood` split's payoff probabilities (mean 1/6: most arms rarely pay)."""


@dataclass(frozen=True)
class BanditTask:
    """The payoff probability of each arm."""

    probs: tuple[float, ...]

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=np.float64)
        if probs.ndim != 1 or probs.size < 2 or not np.all((probs >= 0.0) & (probs <= 1.0)):
            raise ValueError(
                f"bandit probs must be a flat sequence of at least 2 probabilities in [0, 1], "
                f"got {self.probs!r}"
            )
        object.__setattr__(self, "probs", tuple(probs.tolist()))

    @property
    def arms(self) -> int:
        return len(self.probs)

    @property
    def best_arm(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def best_prob(self) -> float:
        return max(self.probs)


class BanditEnv(ArrayEnv):
    """
    ## Description
    A K-armed Bernoulli bandit. Each task hides the probability with which each arm pays 1;
    an episode is 10 pulls. Across episodes of the same task the agent must find the best arm
    from the rewards of its earlier pulls. Registered for K = 5, 10 and 50.

    ## Action Space
    `Discrete(K)`: the arm to pull.

    ## Observation Space
    `Box(0, 1, (K + 1,), float32)`: what the last pull was and what it paid, so a
    feed-forward policy can react within an episode (e.g. stay on an arm that paid).

    | Num    | Observation                    | Min | Max |
    |--------|--------------------------------|-----|-----|
    | 0..K-1 | one-hot of the last arm pulled | 0   | 1   |
    | K      | reward of the last pull        | 0   | 1   |

    Before the first pull of an episode the observation is all zeros.

    ## Rewards
    1 with the pulled arm's probability, else 0. The best expected return of an episode is
    10 times the best arm's probability.

    ## Episode End
    Never terminates; truncated after 10 pulls (registration).

    ## Arguments
    `gymnasium.make("metarl/Bandit5-v0", task={"probs": [0.1, 0.9, 0.4, 0.5, 0.2]},
    render_mode=...)`, likewise `metarl/Bandit10-v0` and `metarl/Bandit50-v0`.
    Training probabilities are uniform in [0, 1], independently per arm; the `ood` split
    draws them from Beta(1, 5), so most arms rarely pay.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}
    render_size = (600, 400)

    def draw(self, canvas: Any) -> None:
        import pygame

        width, height = canvas.get_size()
        probs = np.asarray(self.task.probs)
        arms = probs.size
        pulls = self.state["pulls"][0]
        wins = self.state["wins"][0]
        last = int(self.state["last_action"][0])
        last_reward = float(self.state["last_reward"][0])
        step = int(pulls.sum())

        canvas.fill((245, 245, 240))
        ink = (40, 40, 40)
        header = f"pull {step}/{PULLS}    return {int(wins.sum())}"
        if last >= 0:
            header += f"    last: arm {last} paid {last_reward:.0f}"
        canvas.blit(font(26).render(header, True, ink), (16, 12))

        left, right, top, bottom = 40, width - 16, 50, height - 70
        slot = (right - left) / arms
        bar = max(2, int(slot * 0.7))
        pygame.draw.line(canvas, (150, 150, 150), (left, bottom), (right, bottom), 1)
        canvas.blit(font(18).render("1", True, ink), (left - 16, top - 6))
        canvas.blit(font(18).render("0", True, ink), (left - 16, bottom - 6))
        for arm in range(arms):
            x = int(left + arm * slot + (slot - bar) / 2)
            pygame.draw.rect(canvas, (225, 225, 225), (x, top, bar, bottom - top))
            filled = int(probs[arm] * (bottom - top))
            colour = (120, 160, 215)
            if arm == last:
                colour = (60, 170, 80) if last_reward > 0 else (220, 90, 60)
            pygame.draw.rect(canvas, colour, (x, bottom - filled, bar, filled))
            if arm == last:
                pygame.draw.rect(canvas, ink, (x - 2, top - 2, bar + 4, bottom - top + 4), 2)
            if arm == self.task.best_arm:
                centre = x + bar // 2
                marker = [(centre - 6, top - 14), (centre + 6, top - 14), (centre, top - 5)]
                pygame.draw.polygon(canvas, (230, 170, 20), marker)
            if pulls[arm] > 0:
                y = int(bottom - wins[arm] / pulls[arm] * (bottom - top))
                pygame.draw.line(canvas, ink, (x - 2, y), (x + bar + 1, y), 3)
            if arms <= 20 or arm % 5 == 0:
                label = font(18).render(str(arm), True, ink)
                canvas.blit(label, (x + bar // 2 - label.get_width() // 2, bottom + 4))
            if arms <= 20 and pulls[arm] > 0:
                count = font(16).render(f"x{pulls[arm]}", True, (90, 90, 90))
                canvas.blit(count, (x + bar // 2 - count.get_width() // 2, bottom + 20))
        legend = "bar: payoff probability   tick: observed win rate   xN: pulls   gold: best arm"
        canvas.blit(font(18).render(legend, True, (90, 90, 90)), (16, height - 26))


class Bandit(ArrayFamily):
    """K-armed Bernoulli bandits; each number of arms is its own registered variant."""

    task_type = BanditTask
    max_episode_steps = PULLS
    splits = ("test", "ood")
    env_class = BanditEnv

    def __init__(self, arms: int = 5) -> None:
        if not isinstance(arms, int) or arms < 2:
            raise ValueError(f"arms must be an int >= 2, got {arms!r}")
        self.arms = arms
        self.name = f"bandit-{arms}"
        self.env_id = f"metarl/Bandit{arms}-v0"
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(arms + 1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(arms)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[BanditTask]:
        return [BanditTask(probs=tuple(row)) for row in rng.uniform(size=(n, self.arms))]

    def sample_ood_tasks(self, n: int, rng: np.random.Generator) -> list[BanditTask]:
        probs = rng.beta(*OOD_BETA, size=(n, self.arms))
        return [BanditTask(probs=tuple(row)) for row in probs]

    def task_params(self, tasks: Sequence[BanditTask]) -> TaskArrays:
        for task in tasks:
            if task.arms != self.arms:
                raise ValueError(
                    f"task {task!r} has {task.arms} arms, family {self.name!r} expects {self.arms}"
                )
        return {"probs": np.array([task.probs for task in tasks], dtype=np.float64)}

    def initial_state(self, params: TaskArrays, rng: BatchRNG) -> State:
        batch = rng.batch_size
        return {
            "last_action": np.full(batch, -1, dtype=np.int64),
            "last_reward": np.zeros(batch),
            "pulls": np.zeros((batch, self.arms), dtype=np.int64),
            "wins": np.zeros((batch, self.arms), dtype=np.int64),
        }

    def transition(
        self, state: State, action: np.ndarray, params: TaskArrays, rng: BatchRNG
    ) -> tuple[State, np.ndarray, np.ndarray]:
        action = action.astype(np.int64).reshape(-1)
        if np.any((action < 0) | (action >= self.arms)):
            raise ValueError(f"actions must be arms in [0, {self.arms}), got {action!r}")
        batch = np.arange(action.size)
        paid = rng.bernoulli(params["probs"][batch, action])
        pulled = action[:, None] == np.arange(self.arms)
        next_state = {
            "last_action": action,
            "last_reward": paid.astype(np.float64),
            "pulls": state["pulls"] + pulled,
            "wins": state["wins"] + (pulled & paid[:, None]),
        }
        return next_state, next_state["last_reward"], np.zeros(action.size, dtype=bool)

    def observe(self, state: State, params: TaskArrays) -> np.ndarray:
        one_hot = state["last_action"][:, None] == np.arange(self.arms)
        return np.concatenate([one_hot, state["last_reward"][:, None]], axis=1)

    def oracle_action(self, state: State, params: TaskArrays) -> np.ndarray:
        """Pull the best arm every time: its expected return, 10 times the best probability, is
        the best of any policy."""
        return np.argmax(params["probs"], axis=1)


register_family("bandit-5", Bandit, arms=5)
register_family("bandit-10", Bandit, arms=10)
register_family("bandit-50", Bandit, arms=50)
