"""Baselines as learners, measured like the meta-learners: return after 0..K adaptation steps.

Step ``k`` means "after ``k * E`` episodes of the task" (``E`` = episodes per step). Each
baseline gets, per test task, the experience the meta-learners adapt on: ``E`` episodes of
the family's horizon ``H`` per step, i.e. ``E * H`` environment steps (exactly ``E`` episodes
where episodes run to the horizon, a few more where they end early, never fewer).

- **random** (not trained): uniform random actions, every task at once through the family's
  batched env.
- **ppo-scratch** (not trained): stable-baselines3's ``PPO("MlpPolicy")`` from a fresh policy
  on each test task;
- **ppo-finetune**: one PPO trained on the training tasks (each update plays one episode in
  each of ``--meta-batch-size`` envs, env ``i`` on the update's task ``i``: ``meta_batch_size x
  H`` env steps), then fine-tuned on each test task.

For the PPO baselines the return after each budget is measured with SB3's ``evaluate_policy``
on ``E`` separate episodes with a stochastic policy, as the meta-learners' returns are
measured on sampled episodes. PPO keeps SB3's defaults (a [64, 64] tanh actor and critic, 10
epochs, clip 0.2, gamma 0.99) except the rollout: ``E`` sub-envs times ``n_steps = H``, so one
PPO update consumes exactly one adaptation step's budget, in mini-batches of ``H`` steps.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space
from tqdm.auto import tqdm

from metarl.config import ConfigError, TrainConfig
from metarl.family.base import TaskFamily
from metarl.family.oracle import play
from metarl.learn.adaptation import Actor, Adaptation, BlockEpisodes, block_sizes
from metarl.learn.learner import Learner
from metarl.process import seeded_global_rng
from metarl.registry import get_family, register_learner

if TYPE_CHECKING:  # stable-baselines3 is imported when a PPO baseline runs
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

_SEED_STREAM = 0xBA5E


class _Untrained(Learner):
    """A baseline with nothing to learn before the test tasks."""

    trainable = False
    baseline = True

    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        raise ConfigError(f"{self.name} learns nothing before the test tasks; train it with "
                          "--iterations 0")

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])


class RandomActor(Actor):
    """Uniform random actions in every column."""

    def __init__(self, space: gym.Space, n_columns: int) -> None:
        self.space = space
        self.n_columns = n_columns

    def reset(self, seed: int) -> None:
        self.space.seed(seed)

    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.stack([self.space.sample() for _ in range(self.n_columns)])


@dataclass
class RandomAdaptation(Adaptation):
    space: gym.Space

    def actor(self, task: int, blocks: Sequence[int] | None = None) -> RandomActor:
        return RandomActor(self.space, len(self.returns) if blocks is None else len(blocks))


@register_learner("random")
class RandomBaseline(_Untrained):
    """Uniform random actions (no learning)."""

    def adaptation(self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes,
                   seed: int) -> RandomAdaptation:
        seeds = np.random.SeedSequence([seed, _SEED_STREAM]).generate_state(adapt_steps + 1)
        blocks = [self._play(tasks, size, int(block_seed)) for size, block_seed in
                  zip(block_sizes(adapt_steps, episodes), seeds, strict=True)]
        successes = [s for _, s in blocks if s is not None]
        return RandomAdaptation([r for r, _ in blocks], self.family.action_space,
                                successes=successes or None)

    def _play(self, tasks: Sequence[Any], episodes: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean return (and success) per task of ``episodes`` episodes of random actions."""
        space = batch_space(self.family.action_space, len(tasks) * episodes)
        space.seed(seed)
        return play(self.family, tasks, episodes, seed, lambda env: space.sample())


class TaskEnv(gym.Wrapper):
    """A family env that switches to :attr:`next_task` at its next reset."""

    def __init__(self, env: gym.Env, task: Any) -> None:
        super().__init__(env)
        self.next_task = task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(seed=seed, options={**(options or {}), "task": self.next_task})


def _vec_env(make: Callable[[int], gym.Env], n: int, seed: int) -> VecEnv:
    """SB3's ``DummyVecEnv`` of ``n`` monitored envs ``make(i)``, seeded with ``seed``."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def monitored(i: int) -> Callable[[], gym.Env]:
        return lambda: Monitor(make(i))

    env = DummyVecEnv([monitored(i) for i in range(n)])
    env.seed(seed)
    return env


def _ppo(env: VecEnv, horizon: int, seed: int, device: torch.device) -> PPO:
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, n_steps=horizon, batch_size=horizon, seed=seed, device=device)


def _task_env(family: TaskFamily, task: Any, _: int) -> gym.Env:
    return family.make_env(task)


class PPOActor(Actor):
    """Column ``k`` acts with the PPO policy after ``k`` fine-tuning budgets."""

    def __init__(self, model: PPO, parameters: list[dict[str, Any]]) -> None:
        self.model = model
        self.parameters = parameters
        self.n_columns = len(parameters)

    def reset(self, seed: int) -> None:
        self.seed = seed

    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        actions = []
        for column, parameters in enumerate(self.parameters):
            self.model.set_parameters(parameters)
            with seeded_global_rng(self.seed + column, self.model.device):
                action, _ = self.model.predict(observations[column], deterministic=deterministic)
            actions.append(action)
        self.seed += self.n_columns
        return np.stack(actions)


@dataclass
class PPOAdaptation(Adaptation):
    """``parameters[i][k]``: task ``i``'s PPO parameters after ``k`` budgets."""

    model: PPO
    parameters: list[list[dict[str, Any]]]

    def actor(self, task: int, blocks: Sequence[int] | None = None) -> PPOActor:
        chosen = range(len(self.returns)) if blocks is None else blocks
        return PPOActor(self.model, [self.parameters[task][k] for k in chosen])


class _PPOBaseline(Learner):
    """PPO on each test task, from :meth:`start_parameters` (see the module docstring)."""

    def start_parameters(self) -> dict[str, Any] | None:
        """The parameters every test task's PPO starts from (None: a fresh policy)."""
        return None

    def adaptation(self, tasks: Sequence[Any], adapt_steps: int, episodes: BlockEpisodes,
                   seed: int) -> PPOAdaptation:
        from stable_baselines3.common.evaluation import evaluate_policy

        sizes = block_sizes(adapt_steps, episodes)
        if len(set(sizes)) > 1:
            raise ConfigError(f"{self.name} fine-tunes on blocks of one size; it has no "
                              "Meta-World protocol (blocks of different sizes)")
        episodes = sizes[0]

        family, horizon = self.family, self.family.max_episode_steps
        start = self.start_parameters()
        task_seeds = np.random.SeedSequence([seed, _SEED_STREAM]).generate_state(len(tasks))
        returns = np.empty((adapt_steps + 1, len(tasks)))
        parameters: list[list[dict[str, Any]]] = []
        model = None
        for i, task in enumerate(tqdm(tasks, desc=self.name, unit="task", disable=None)):
            task_seed = int(task_seeds[i])
            make = functools.partial(_task_env, family, task)
            train_env = _vec_env(make, episodes, task_seed)
            eval_env = _vec_env(make, episodes, task_seed + 1)
            with seeded_global_rng(task_seed, self.device):
                model = _ppo(train_env, horizon, task_seed, self.device)
                if start is not None:
                    model.set_parameters(start, device=self.device)
                kept = []
                for step in range(adapt_steps + 1):
                    if step > 0:
                        model.learn(episodes * horizon, reset_num_timesteps=False)
                    episode_returns, _ = evaluate_policy(
                        model, eval_env, n_eval_episodes=episodes, deterministic=False,
                        return_episode_rewards=True,
                    )
                    returns[step, i] = np.mean(episode_returns)
                    kept.append(model.get_parameters())
            parameters.append(kept)
            train_env.close()
            eval_env.close()
        assert model is not None
        return PPOAdaptation(list(returns), model, parameters)


@register_learner("ppo-scratch")
class PPOScratch(_PPOBaseline, _Untrained):
    """PPO from a fresh policy on each test task."""


@register_learner("ppo-finetune")
class PPOFinetune(_PPOBaseline):
    """PPO trained on the training tasks, then fine-tuned on each test task."""

    phases = ("update",)
    baseline = True

    @classmethod
    def steps_per_iteration(cls, config: TrainConfig) -> int:
        """One episode in each of ``meta_batch_size`` envs."""
        return config.meta_batch_size * get_family(config.family).max_episode_steps

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        family, n = self.family, self.config.meta_batch_size
        default = family.default_task()
        self.task_envs = [TaskEnv(family.make_env(default), default) for _ in range(n)]
        self.envs = _vec_env(lambda i: self.task_envs[i], n, 0)
        self.model = _ppo(self.envs, family.max_episode_steps, self.config.seed, self.device)

    def start_parameters(self) -> dict[str, Any]:
        return self.model.get_parameters()

    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One PPO update in which every env plays one fresh episode of its task of
        ``tasks`` (more where episodes end early)."""
        if len(tasks) != len(self.task_envs):
            raise ConfigError(f"ppo-finetune plays --meta-batch-size {len(self.task_envs)} "
                              f"tasks per iteration, got {len(tasks)}")
        for env, task in zip(self.task_envs, tasks, strict=True):
            env.next_task = task
        self.envs.seed(int(self.rng.integers(2**31)))
        seed = int(self.rng.integers(2**31))
        began = time.perf_counter()
        with seeded_global_rng(seed, self.device):  # resetting the step count resets the envs
            self.model.learn(len(tasks) * self.family.max_episode_steps,
                             reset_num_timesteps=True)
        steps = self.model.num_timesteps
        self.env_steps += steps
        episodes: Sequence[dict[str, Any]] = self.model.ep_info_buffer or []
        mean = float(np.mean([info["r"] for info in episodes] or [np.nan]))
        return {"return_before": mean, "return_after": mean, "env_steps": steps,
                "update_seconds": time.perf_counter() - began}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.model.policy.state_dict(),
                "optimizer": self.model.policy.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])
