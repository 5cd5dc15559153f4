"""RL^2's training trials as stable-baselines3's ``VecEnv`` (what ``RecurrentPPO`` steps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from metarl.config import ConfigError
from metarl.family.base import TaskFamily
from metarl.rollout.trials import Trial, TrialBatch


class TrialVecEnv(VecEnv):
    """SB3's ``VecEnv`` over a :class:`TrialBatch` of trials of ``steps`` steps, all starting
    and ending together. The step that ends the trials reports them done as a time limit
    (``TimeLimit.truncated``, with ``terminal_observation``: the value of the state there is
    not zero) and starts new trials at once; steps that end an episode add ``trial_episode``
    and ``episode_return`` to ``info``."""

    render_mode = None

    def __init__(self, family: TaskFamily, n_envs: int, steps: int) -> None:
        self.family = family
        self.steps = steps
        self.trials = TrialBatch(family, [family.default_task()] * n_envs, steps=steps)
        super().__init__(n_envs, self.trials.observation_space, self.trials.codec.space)
        self.trials.reset(0)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Env ``i`` plays ``tasks[i]`` from the next :meth:`reset` on."""
        if len(tasks) != self.num_envs:
            raise ConfigError(f"{self.num_envs} trials need as many tasks, got {len(tasks)}")
        self.trials.close()
        self.trials = TrialBatch(self.family, tasks, steps=self.steps)
        self.trials.reset(0)

    def pop_completed(self) -> list[Trial]:
        """The trials finished since the last call."""
        return self.trials.pop_completed()

    def reset(self) -> np.ndarray:
        seeds: list[Any] = self._seeds
        seed = seeds[0]
        obs = self.trials.restart() if seed is None else self.trials.reset(int(seed))
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        result = self.trials.step(self._actions)
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": False}
                                       for _ in range(self.num_envs)]
        for i in np.flatnonzero(result.episode_ended):
            infos[i].update({"trial_episode": int(result.episode_index[i]),
                             "episode_return": float(result.episode_returns[i])})
        rewards = result.rewards.astype(np.float32)
        if result.trial_over.all():
            for info, last in zip(infos, result.observations, strict=True):
                info.update({"terminal_observation": last, "TimeLimit.truncated": True})
            return self.trials.restart(), rewards, np.ones(self.num_envs, dtype=bool), infos
        return result.observations, rewards, np.zeros(self.num_envs, dtype=bool), infos

    def close(self) -> None:
        self.trials.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                   **method_kwargs: Any) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(list(self._get_indices(indices)))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))
