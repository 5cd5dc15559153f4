"""Trials: several episodes of one task played back to back, for learners that adapt in memory.

A learner that adapts in its memory (RL^2, VariBAD) acts on *trial observations*: the family's
observation (flattened), the previous action's features (:class:`ActionCodec`), the previous
reward and a flag that is 1 when the previous step ended an episode (layout:
:func:`trial_observation_space`). Its memory runs on across the episodes of a trial and is
reset between trials.

:class:`TrialBatch` is the one trial stepper: one trial per column, every column stepped at
once through the family's batched env (one array call per time step for array families).
When a column's episode ends (terminated, or truncated at the horizon) and its trial goes on,
the column starts a new episode of the same task at once (:meth:`BatchedEnv.reset_columns`,
its random stream continuing), and the step returns that episode's first observation with the
flag set. A trial lasts ``episodes`` episodes or ``steps`` steps, whichever comes first; a
column whose trial is over stays over (reward 0) until :meth:`TrialBatch.restart`.
:class:`TrialEnv` is the single Gymnasium env of one trial: a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.config import ConfigError
from metarl.family.base import TaskFamily
from metarl.family.vector import BatchedEnv


class ActionCodec:
    """How actions travel: the policy's action space, the env's actions and the previous-action
    features in the observation.

    Discrete actions pass as they are and appear one-hot. A Box with finite bounds is offered
    to the policy as ``[-1, 1]^d`` and rescaled to the env's bounds (a unit-scale Gaussian then
    fits every family); it appears clipped to ``[-1, 1]``. Other spaces pass as they are.
    """

    def __init__(self, space: gym.Space) -> None:
        self.env_space: Any = space
        self.rescale = (isinstance(space, gym.spaces.Box) and bool(np.all(np.isfinite(space.low)))
                        and bool(np.all(np.isfinite(space.high))))
        if isinstance(space, gym.spaces.Box):
            low, high = (-1.0, 1.0) if self.rescale else (space.low, space.high)
            self.space: Any = gym.spaces.Box(low, high, space.shape, np.float32)
        elif isinstance(space, gym.spaces.Discrete):
            self.space = space
        else:
            raise ConfigError(f"trials need a Box or Discrete action space, got {space}")
        self.features_space: Any = gym.spaces.flatten_space(self.space)
        self.width = gym.spaces.flatdim(self.space)

    @property
    def tail_width(self) -> int:
        """Width of a trial observation's tail: the previous action's features, the previous
        reward and the episode-end flag (layout: :func:`trial_observation_space`)."""
        return self.width + 2

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """The env's action for the policy's ``action`` (one, or a batch)."""
        if not self.rescale:
            return action
        space = self.env_space
        unit = np.clip(action, -1.0, 1.0)
        return (space.low + (unit + 1.0) * 0.5 * (space.high - space.low)).astype(space.dtype)

    def features(self, action: Any) -> np.ndarray:
        """The previous-action features of one policy action."""
        return self.batch_features(np.asarray(action)[None])[0]

    def batch_features(self, actions: np.ndarray) -> np.ndarray:
        """The previous-action features of every action of a batch, ``[n, width]``."""
        if isinstance(self.space, gym.spaces.Discrete):
            return np.eye(self.width, dtype=np.float32)[np.asarray(actions, dtype=np.int64)]
        return np.clip(actions, self.space.low, self.space.high).astype(np.float32).reshape(
            len(actions), -1)


def trial_observation_space(observation_space: gym.Space, codec: ActionCodec) -> gym.spaces.Box:
    """The space of trial observations: the flattened observation, the previous action's
    features, the previous reward and the episode-end flag."""
    flat: Any = gym.spaces.flatten_space(observation_space)
    codes = codec.features_space
    return gym.spaces.Box(
        np.concatenate([flat.low, codes.low, [-np.inf, 0.0]]).astype(np.float32),
        np.concatenate([flat.high, codes.high, [np.inf, 1.0]]).astype(np.float32),
        dtype=np.float32,
    )


def flatten_batch(space: gym.Space, observations: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``gym.spaces.flatten`` of every observation of a batch, ``[n, flat]`` float32."""
    if isinstance(space, gym.spaces.Box):
        return np.asarray(observations).reshape(len(observations), -1).astype(np.float32)
    return np.stack([np.asarray(gym.spaces.flatten(space, o)) for o in observations]
                    ).astype(np.float32)


def trial_observations(space: gym.Space, observations: Sequence[Any] | np.ndarray,
                       features: np.ndarray,
                       rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
    """Trial observations of a batch, ``[n, width]`` (layout: :func:`trial_observation_space`)
    from the env's ``observations`` (of ``space``), the previous actions' ``features`` and the
    previous ``rewards`` and episode-end flags ``ended``, ``[n]`` each."""
    return np.concatenate([flatten_batch(space, observations), features,
                           np.asarray(rewards, np.float32)[:, None],
                           np.asarray(ended, np.float32)[:, None]], axis=1)


@dataclass
class Trial:
    """A finished trial: the returns of its completed episodes, in order, and its total reward
    (which also counts an episode the trial's step budget cut short)."""

    returns: list[float]
    total: float
    successes: list[bool] | None = None
    """Whether each completed episode succeeded (families that define success)."""


@dataclass
class TrialStep:
    """What one step of a :class:`TrialBatch` gives, per column (``[n]`` each unless said)."""

    observations: np.ndarray
    """The next trial observations, ``[n, width]``: a new episode's first one where an episode
    ended and the trial goes on."""
    rewards: np.ndarray
    """float64; 0 for columns whose trial was already over."""
    episode_ended: np.ndarray
    """This step ended an episode (terminated or truncated)."""
    trial_over: np.ndarray
    """This step ended the column's trial."""
    episode_returns: np.ndarray
    """The return of the episode that ended here (0 elsewhere)."""
    episode_index: np.ndarray
    """The index in its trial of the episode this step belonged to."""
    episode_successes: np.ndarray | None = None
    """Whether the episode that ended here succeeded at any of its steps (False elsewhere);
    None for a family without success."""
    next_observations: np.ndarray | None = None
    """The family's observations after the step, flattened ``[n, obs]``: the state the action
    led to, also where an episode ended and :attr:`observations` show the next one's start
    (what a model of the transition and reward is fitted to)."""


class TrialBatch:
    """One trial per task of ``tasks`` (one column each), stepped at once through the family's
    batched env (see the module docstring). Give ``episodes``, ``steps`` or both."""

    def __init__(self, family: TaskFamily, tasks: Sequence[Any], episodes: int | None = None,
                 steps: int | None = None) -> None:
        if episodes is None and steps is None:
            raise ConfigError("a trial needs a length: give episodes, steps or both")
        for name, value in (("episodes", episodes), ("steps", steps)):
            if value is not None and value < 1:
                raise ConfigError(f"a trial needs at least 1 of its {name}, got {value}")
        if not tasks:
            raise ConfigError("a batch of trials needs at least one task")
        self.family = family
        self.tasks = list(tasks)
        self.episodes = episodes
        self.steps = steps
        self.codec = ActionCodec(family.action_space)
        self.observation_space = trial_observation_space(family.observation_space, self.codec)
        self.env: BatchedEnv = family.make_vector_env(self.tasks, 1)
        self.n = len(self.tasks)
        self.success_key = family.success_key
        self.completed: list[Trial] = []
        """Every trial finished since the caller last cleared it."""
        self._last = np.zeros((self.n, self.observation_space.shape[0]), np.float32)

    def reset(self, seed: int) -> np.ndarray:
        """Start every column's trial afresh, column ``i`` seeded like a single env with
        ``seed + i``; returns the first trial observations."""
        obs, _ = self.env.reset(seed=seed)
        return self._start(obs)

    def restart(self) -> np.ndarray:
        """Start new trials in every column, each column's random stream continuing."""
        return self._start(self.env.reset_columns(np.ones(self.n, dtype=bool)))

    def _start(self, obs: np.ndarray) -> np.ndarray:
        n = self.n
        self.running = np.ones(n, dtype=bool)
        self.trial_steps = np.zeros(n, dtype=np.int64)
        self.episode_counts = np.zeros(n, dtype=np.int64)
        self.episode_returns = np.zeros(n)
        self.episode_succeeded = np.zeros(n, dtype=bool)
        self.totals = np.zeros(n)
        self.returns: list[list[float]] = [[] for _ in range(n)]
        self.successes: list[list[bool]] = [[] for _ in range(n)]
        self._last = self._observe(obs, np.zeros((n, self.codec.width), np.float32),
                                   np.zeros(n), np.zeros(n, dtype=bool))
        return self._last

    def _observe(self, obs: np.ndarray, features: np.ndarray, rewards: np.ndarray,
                 ended: np.ndarray) -> np.ndarray:
        return trial_observations(self.family.observation_space, obs, features, rewards, ended)

    def step(self, actions: np.ndarray) -> TrialStep:
        """Every column takes the policy's action ``actions[i]`` (in :attr:`codec`'s space);
        columns whose trial is over are not counted."""
        running = self.running
        obs, rewards, terminated, truncated, info = self.env.step(self.codec.to_env(actions))
        rewards = np.where(running, rewards, 0.0)
        if self.success_key is not None:
            self.episode_succeeded |= np.asarray(info[self.success_key], dtype=bool) & running
        self.trial_steps += running
        self.episode_returns += rewards
        self.totals += rewards
        ended = (terminated | truncated) & running
        index = self.episode_counts.copy()
        finished = np.where(ended, self.episode_returns, 0.0)
        succeeded = self.episode_succeeded & ended if self.success_key is not None else None
        for i in np.flatnonzero(ended):
            self.returns[i].append(float(self.episode_returns[i]))
            self.successes[i].append(bool(self.episode_succeeded[i]))
        self.episode_counts += ended
        over = np.zeros(self.n, dtype=bool)
        if self.episodes is not None:
            over |= self.episode_counts >= self.episodes
        if self.steps is not None:
            over |= self.trial_steps >= self.steps
        over &= running
        for i in np.flatnonzero(over):
            self.completed.append(Trial(self.returns[i], float(self.totals[i]),
                                        self.successes[i] if self.success_key else None))
        reached = flatten_batch(self.family.observation_space, obs)
        restart = ended & ~over
        if restart.any():
            obs = self.env.reset_columns(restart)
        self.episode_returns[ended] = 0.0
        self.episode_succeeded[ended] = False
        self.running = running & ~over
        features = self.codec.batch_features(actions)
        self._last = np.where(running[:, None], self._observe(obs, features, rewards, ended),
                              self._last)
        return TrialStep(self._last, rewards, ended, over, finished, index, succeeded, reached)

    def pop_completed(self) -> list[Trial]:
        """The trials finished since the last call."""
        trials, self.completed = self.completed, []
        return trials

    def close(self) -> None:
        self.env.close()


class TrialEnv(gym.Env):
    """One trial of ``family``'s task as one Gymnasium episode: a :class:`TrialBatch` of one.

    Observations are trial observations, actions the policy's (:class:`ActionCodec`). The
    step that ends the trial reports it as ``truncated`` (a time limit: the value of the state
    there is not zero); steps that end an episode add ``trial_episode`` (its index in the
    trial) and ``episode_return`` to ``info``. The task changes at a trial's start:
    ``reset(options={"task": ...})``, kept for the trials after it.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, family: TaskFamily, task: Any = None, episodes: int | None = None,
                 steps: int | None = None) -> None:
        self.family = family
        self.episodes, self.steps = episodes, steps
        self.task = family.default_task() if task is None else family.coerce_task(task)
        self.trials = TrialBatch(family, [self.task], episodes, steps)
        self.codec = self.trials.codec
        self.action_space = self.codec.space
        self.observation_space = self.trials.observation_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.trials.close()
            self.task = self.family.coerce_task(options["task"])
            self.trials = TrialBatch(self.family, [self.task], self.episodes, self.steps)
        key = seed if seed is not None else int(self.np_random.integers(2**62))
        return self.trials.reset(key)[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        result = self.trials.step(np.asarray(action)[None])
        info: dict[str, Any] = {}
        if result.episode_ended[0]:
            info = {"trial_episode": int(result.episode_index[0]),
                    "episode_return": float(result.episode_returns[0])}
        return (result.observations[0], float(result.rewards[0]), False,
                bool(result.trial_over[0]), info)

    def close(self) -> None:
        self.trials.close()
