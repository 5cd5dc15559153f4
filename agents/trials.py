"""Trials for RL^2: several episodes of one task played as one episode, the observation
extended with the previous action, reward and episode-end flag.

:class:`TrialEnv` wraps one Gymnasium env; :func:`training_trials` gives the vectorised trials
RecurrentPPO trains on: :class:`ArrayTrials`, which steps every trial of a batch at once
through an array family's dynamics, or, for any other family, SB3's ``DummyVecEnv`` over
``TrialEnv`` s (:class:`EnvTrials`). Both play trials of a fixed number of steps, all starting
and ending together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from metarl.config import ConfigError
from metarl.family.array import ArrayFamily, State, where_columns
from metarl.family.base import TaskFamily
from metarl.family.rng import BatchRNG


class ActionCodec:
    """How actions travel: the policy's action space, the env's actions and the previous-action
    features in the observation.

    Discrete actions pass as they are and appear one-hot. A Box with finite bounds is offered
    to the policy as ``[-1, 1]^d`` and rescaled to the env's bounds (a unit-scale Gaussian then
    fits every family); it appears clipped to ``[-1, 1]``. Other spaces pass as they are.
    """

    def __init__(self, space: gym.Space) -> None:
        self.env_space = space
        self.rescale = (isinstance(space, gym.spaces.Box) and bool(np.all(np.isfinite(space.low)))
                        and bool(np.all(np.isfinite(space.high))))
        if isinstance(space, gym.spaces.Box):
            low, high = (-1.0, 1.0) if self.rescale else (space.low, space.high)
            self.space: gym.Space = gym.spaces.Box(low, high, space.shape, np.float32)
        elif isinstance(space, gym.spaces.Discrete):
            self.space = space
        else:
            raise ConfigError(f"rl2 needs a Box or Discrete action space, got {space}")
        self.features_space = gym.spaces.flatten_space(self.space)
        self.width = int(self.features_space.shape[0])

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """The env's action for the policy's ``action`` (one, or a batch)."""
        if not self.rescale:
            return action
        space = self.env_space
        unit = np.clip(action, -1.0, 1.0)
        return (space.low + (unit + 1.0) * 0.5 * (space.high - space.low)).astype(space.dtype)

    def features(self, action: Any) -> np.ndarray:
        """The previous-action features of one policy action."""
        if isinstance(self.space, gym.spaces.Box):
            action = np.clip(np.asarray(action, dtype=np.float32), self.space.low, self.space.high)
        return gym.spaces.flatten(self.space, action).astype(np.float32)

    def batch_features(self, actions: np.ndarray) -> np.ndarray:
        """:meth:`features` of every action of a batch, ``[n, width]``."""
        if isinstance(self.space, gym.spaces.Discrete):
            return np.eye(self.width, dtype=np.float32)[np.asarray(actions, dtype=np.int64)]
        return np.clip(actions, self.space.low, self.space.high).astype(np.float32).reshape(
            len(actions), -1)


@dataclass
class Trial:
    """A finished trial: the returns of its completed episodes, in order, and its total reward
    (which also counts an episode the trial's step budget cut short)."""

    returns: list[float]
    total: float


class TrialEnv(gym.Wrapper):
    """One trial, several episodes of the same task, as one Gymnasium episode.

    The trial ends after ``episodes`` episodes, or after ``steps`` steps (possibly inside an
    episode), whichever comes first; give at least one. Observation (float32), in this order:
    the wrapped env's observation (flattened), the previous action's features
    (:class:`ActionCodec`: one-hot, or the Box action in ``[-1, 1]``), the previous reward,
    and a flag that is 1 when the previous step ended an episode. At the trial's first step
    all but the observation are 0. When an episode ends (terminated or truncated) and the trial
    goes on, the wrapped env is reset at once and the step returns the new episode's first
    observation with the flag 1; the step that ends the trial reports it as ``truncated`` (a
    time limit: the value of the state there is not zero). Steps that end an episode add
    ``trial_episode`` (its index in the trial) and ``episode_return`` to ``info``.

    The task changes at a trial's start: ``reset(options={"task": ...})``, or the task given to
    :meth:`set_task` (kept for the trials after it).
    """

    def __init__(self, env: gym.Env, episodes: int | None = None,
                 steps: int | None = None) -> None:
        if episodes is None and steps is None:
            raise ConfigError("a trial needs a length: give episodes, steps or both")
        for name, value in (("episodes", episodes), ("steps", steps)):
            if value is not None and value < 1:
                raise ConfigError(f"a trial needs at least 1 of its {name}, got {value}")
        super().__init__(env)
        self.episodes = episodes
        self.steps = steps
        self.codec = ActionCodec(env.action_space)
        self.action_space = self.codec.space
        self.env_observation_space = env.observation_space
        self.observation_space = trial_observation_space(env.observation_space, self.codec)
        self.task: Any = None
        self.step_count = 0
        self.episode_return = 0.0
        self.total = 0.0
        self.returns: list[float] = []
        self.completed: list[Trial] = []
        """Every trial finished since the caller last cleared it."""

    def set_task(self, task: Any) -> None:
        """Play ``task`` from the next trial on."""
        self.task = task

    def observation_of(self, obs: Any, features: np.ndarray, reward: float,
                       ended: bool) -> np.ndarray:
        """The trial's observation: ``obs``, previous-action features, reward and flag."""
        return trial_observations(self.env_observation_space, [obs], features[None],
                                  np.array([reward]), np.array([ended]))[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = dict(options or {})
        if "task" in options:
            self.task = options["task"]
        elif self.task is not None:
            options["task"] = self.task
        obs, info = self.env.reset(seed=seed, options=options or None)
        self.step_count = 0
        self.episode_return = 0.0
        self.total = 0.0
        self.returns = []
        return self.observation_of(obs, np.zeros(self.codec.width, np.float32), 0.0, False), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self.codec.to_env(action))
        self.step_count += 1
        self.episode_return += float(reward)
        self.total += float(reward)
        ended = bool(terminated or truncated)
        if ended:
            info = {**info, "trial_episode": len(self.returns),
                    "episode_return": self.episode_return}
            self.returns.append(self.episode_return)
            self.episode_return = 0.0
        trial_over = (self.episodes is not None and len(self.returns) == self.episodes) or (
            self.steps is not None and self.step_count == self.steps)
        if trial_over:
            self.completed.append(Trial(self.returns, self.total))
        elif ended:
            obs, _ = self.env.reset()
        features = self.codec.features(action)
        return self.observation_of(obs, features, float(reward), ended), float(reward), \
            False, trial_over, info


def trial_observation_space(observation_space: gym.Space, codec: ActionCodec) -> gym.spaces.Box:
    """The space of trial observations: the flattened observation, the previous action's
    features, the previous reward and the episode-end flag."""
    flat = gym.spaces.flatten_space(observation_space)
    codes = codec.features_space
    return gym.spaces.Box(
        np.concatenate([flat.low, codes.low, [-np.inf, 0.0]]).astype(np.float32),
        np.concatenate([flat.high, codes.high, [np.inf, 1.0]]).astype(np.float32),
        dtype=np.float32,
    )


def flatten_batch(space: gym.Space, observations: Sequence[Any]) -> np.ndarray:
    """``gym.spaces.flatten`` of every observation of a batch, ``[n, flat]`` float32."""
    if isinstance(space, gym.spaces.Box):
        return np.asarray(observations).reshape(len(observations), -1).astype(np.float32)
    return np.stack([gym.spaces.flatten(space, o) for o in observations]).astype(np.float32)


def trial_observations(space: gym.Space, observations: Sequence[Any], features: np.ndarray,
                       rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
    """Trial observations of a batch, ``[n, width]`` (layout: :func:`trial_observation_space`)
    from the env's ``observations`` (of ``space``), the previous actions' ``features`` and the
    previous ``rewards`` and episode-end flags ``ended``, ``[n]`` each."""
    return np.concatenate([flatten_batch(space, observations), features,
                           np.asarray(rewards, np.float32)[:, None],
                           np.asarray(ended, np.float32)[:, None]], axis=1)


class EnvTrials(DummyVecEnv):
    """SB3's ``DummyVecEnv`` over :class:`TrialEnv` s of ``steps`` steps: the trials of a family
    that has no array dynamics."""

    def __init__(self, family: TaskFamily, n_envs: int, steps: int) -> None:
        default = family.default_task()
        super().__init__([lambda: TrialEnv(family.make_env(default), steps=steps)
                          for _ in range(n_envs)])

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Env ``i`` plays ``tasks[i]`` from its next trial on."""
        for env, task in zip(self.envs, tasks, strict=True):
            env.set_task(task)  # type: ignore[attr-defined]

    def pop_completed(self) -> list[Trial]:
        """The trials finished since the last call."""
        trials = [trial for env in self.envs for trial in env.completed]  # type: ignore
        for env in self.envs:
            env.completed.clear()  # type: ignore[attr-defined]
        return trials


class ArrayTrials(VecEnv):
    """``n_envs`` trials of ``steps`` steps stepped at once through an :class:`ArrayFamily`'s
    array dynamics: what ``n_envs`` :class:`TrialEnv` s in a ``DummyVecEnv`` do (the same
    observations, rewards, flags and ``info`` for the same start states and actions), without a
    Python loop over envs. Column ``i`` draws its random numbers from the stream of a single
    env seeded with ``seed + i`` (:class:`BatchRNG`); an episode that ends inside a trial
    restarts from a fresh start state drawn from the same stream."""

    render_mode = None

    def __init__(self, family: ArrayFamily, n_envs: int, steps: int) -> None:
        if steps < 1:
            raise ConfigError(f"a trial needs at least 1 of its steps, got {steps}")
        self.family = family
        self.steps = steps
        self.horizon = family.max_episode_steps
        self.codec = ActionCodec(family.action_space)
        super().__init__(n_envs, trial_observation_space(family.observation_space, self.codec),
                         self.codec.space)
        self.set_tasks([family.default_task()] * n_envs)
        self.completed: list[Trial] = []
        self._rng = BatchRNG.from_seed(0, n_envs)
        self._start_trials()

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Column ``i`` plays ``tasks[i]`` from its next trial on."""
        if len(tasks) != self.num_envs:
            raise ConfigError(f"{self.num_envs} trials need as many tasks, got {len(tasks)}")
        self._params = self.family.task_params([self.family.coerce_task(t) for t in tasks])

    def pop_completed(self) -> list[Trial]:
        """The trials finished since the last call."""
        trials, self.completed = self.completed, []
        return trials

    def _start_trials(self) -> np.ndarray:
        n = self.num_envs
        self.params = dict(self._params)
        self.state: State = self.family.initial_state(self.params, self._rng)
        self.trial_step = 0
        self.episode_steps = np.zeros(n, dtype=np.int64)
        self.episode_returns = np.zeros(n)
        self.totals = np.zeros(n)
        self.returns: list[list[float]] = [[] for _ in range(n)]
        return self._observe(np.zeros((n, self.codec.width), np.float32), np.zeros(n),
                             np.zeros(n, dtype=bool))

    def _observe(self, features: np.ndarray, rewards: np.ndarray,
                 ended: np.ndarray) -> np.ndarray:
        return trial_observations(self.family.observation_space,
                                  self.family.observe(self.state, self.params), features,
                                  rewards, ended)

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:
            self._rng = BatchRNG.from_seed(int(self._seeds[0]), self.num_envs)
        self._reset_seeds()
        return self._start_trials()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        actions = self._actions
        self.state, rewards, terminated = self.family.transition(
            self.state, self.codec.to_env(actions), self.params, self._rng)
        self.trial_step += 1
        self.episode_steps += 1
        self.episode_returns += rewards
        self.totals += rewards
        ended = np.asarray(terminated, dtype=bool) | (self.episode_steps >= self.horizon)
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": False}
                                       for _ in range(self.num_envs)]
        for i in np.flatnonzero(ended):
            infos[i].update({"trial_episode": len(self.returns[i]),
                             "episode_return": float(self.episode_returns[i])})
            self.returns[i].append(float(self.episode_returns[i]))
        features = self.codec.batch_features(actions)
        if self.trial_step == self.steps:
            last = self._observe(features, rewards, ended)
            for i, info in enumerate(infos):
                info.update({"terminal_observation": last[i], "TimeLimit.truncated": True})
                self.completed.append(Trial(self.returns[i], float(self.totals[i])))
            return (self._start_trials(), rewards.astype(np.float32),
                    np.ones(self.num_envs, dtype=bool), infos)
        if ended.any():
            fresh = self.family.initial_state(self.params, self._rng)
            self.state = where_columns(ended, fresh, self.state)
            self.episode_steps[ended] = 0
            self.episode_returns[ended] = 0.0
        return (self._observe(features, rewards, ended), rewards.astype(np.float32),
                np.zeros(self.num_envs, dtype=bool), infos)

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                   **method_kwargs: Any) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


def training_trials(family: TaskFamily, n_envs: int, steps: int) -> ArrayTrials | EnvTrials:
    """``n_envs`` trials of ``steps`` steps of ``family``, batched where it has array dynamics."""
    if isinstance(family, ArrayFamily):
        return ArrayTrials(family, n_envs, steps)
    return EnvTrials(family, n_envs, steps)
