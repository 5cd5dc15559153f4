"""stable-baselines3 baselines measured like the meta-learners: return after 0..K adaptation steps.

Step ``k`` means "after ``k * E`` episodes of the task" (``E`` = episodes per step). Each
baseline gets, per test task, the same experience the meta-learners adapt on: ``E`` episodes of
the family's horizon ``H`` per step, i.e. ``E * H`` environment steps (exactly ``E`` episodes
where episodes run to the horizon, a few more where they end early, never fewer). After each
budget the return is measured with SB3's ``evaluate_policy`` on ``E`` separate episodes with a
stochastic policy, as the meta-learners' returns are measured on sampled episodes.

- **ppo-scratch**: a fresh ``PPO("MlpPolicy")`` per test task;
- **ppo-finetune**: one PPO pretrained on the training-task mixture (a ``DummyVecEnv`` whose
  sub-envs draw a new training task at every reset), then fine-tuned per test task;
- **random**: uniform random actions.

PPO keeps SB3's defaults (a [64, 64] tanh actor and critic, 10 epochs, clip 0.2, gamma 0.99)
except the rollout: ``E`` sub-envs times ``n_steps = H``, so one PPO update consumes exactly
one adaptation step's budget, in mini-batches of ``H`` steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from metarl.config import TrainConfig
from metarl.family.base import TaskFamily
from metarl.run.evaluation import EvaluationResult

if TYPE_CHECKING:  # stable-baselines3 is imported when a baseline runs, not at start-up
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecEnv

BASELINES = ("ppo-scratch", "ppo-finetune", "random")
_SEED_STREAM = 0xBA5E


def meta_training_steps(config: TrainConfig, horizon: int, iterations: int) -> int:
    """Environment steps ``iterations`` meta-iterations sample at most (every episode to the
    horizon, ``inner_steps + 1`` batches of ``meta_batch_size * episodes_per_task`` each)."""
    episodes = config.meta_batch_size * config.episodes_per_task * (config.inner_steps + 1)
    return iterations * episodes * horizon


class RandomPolicy:
    """Uniform random actions; ``learn`` does nothing, so every step measures the same policy."""

    def __init__(self, action_space: gym.Space, seed: int) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        return np.stack([self.action_space.sample() for _ in range(len(observation))]), None

    def learn(self, total_timesteps: int, reset_num_timesteps: bool = True) -> RandomPolicy:
        return self


class TrainingTaskMixture(gym.Wrapper):
    """A family env that draws a fresh training task at every reset."""

    def __init__(self, family: TaskFamily, seed: int) -> None:
        self.family = family
        self.task_rng = np.random.default_rng([seed, _SEED_STREAM])
        super().__init__(family.make_env(self._draw()))

    def _draw(self) -> Any:
        return self.family.sample_tasks(1, self.task_rng)[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(seed=seed, options={**(options or {}), "task": self._draw()})


def _progress(total: int, desc: str) -> BaseCallback:
    """A callback showing a tqdm bar over PPO's environment steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = tqdm(total=total, desc=desc, unit="step", unit_scale=True)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Progress()


def _vec_env(make: Callable[[int], gym.Env], n: int, seed: int) -> VecEnv:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda i=i: Monitor(make(i)) for i in range(n)])
    env.seed(seed)
    return env


def _ppo(env: VecEnv, horizon: int, seed: int, device: str) -> PPO:
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", env, n_steps=horizon, batch_size=horizon, seed=seed, device=device)


def pretrain_ppo(
    family: TaskFamily, steps: int, episodes: int, seed: int, device: str = "cpu"
) -> PPO:
    """PPO trained for ``steps`` environment steps on the training-task mixture."""
    env = _vec_env(lambda i: TrainingTaskMixture(family, seed * 1000 + i), episodes, seed)
    model = _ppo(env, family.max_episode_steps, seed, device)
    model.learn(steps, callback=_progress(steps, f"ppo pretraining on {family.name}"))
    return model


def run_baseline(
    name: str,
    family: TaskFamily,
    tasks: Sequence[Any],
    adapt_steps: int,
    episodes: int,
    seed: int = 0,
    split: str = "test",
    pretrain_steps: int = 0,
    device: str = "cpu",
) -> tuple[EvaluationResult, dict[str, Any]]:
    """Evaluate baseline ``name`` on ``tasks``; returns the result and a record of its setup
    (budgets, seconds spent pretraining)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    horizon = family.max_episode_steps
    setup: dict[str, Any] = {
        "kind": "baseline", "env_steps_per_adaptation_step": episodes * horizon
    }
    if name == "random":
        def agent_for(env: VecEnv, task_seed: int) -> Any:
            return RandomPolicy(env.action_space, task_seed)
    else:
        setup["ppo"] = {"n_envs": episodes, "n_steps": horizon, "batch_size": horizon}
        pretrained = None
        if name == "ppo-finetune":
            began = time.perf_counter()
            pretrained = pretrain_ppo(family, pretrain_steps, episodes, seed, device)
            setup["pretrain_steps"] = pretrain_steps
            setup["pretrain_seconds"] = time.perf_counter() - began

        def agent_for(env: VecEnv, task_seed: int) -> Any:
            model = _ppo(env, horizon, task_seed, device)
            if pretrained is not None:
                model.set_parameters(pretrained.get_parameters(), device=device)
            return model

    began = time.perf_counter()
    task_seeds = np.random.SeedSequence([seed, _SEED_STREAM]).generate_state(len(tasks))
    returns = np.empty((adapt_steps + 1, len(tasks)))
    for i, task in enumerate(tqdm(tasks, desc=name, unit="task")):
        task_seed = int(task_seeds[i])
        train_env = _vec_env(lambda _, task=task: family.make_env(task), episodes, task_seed)
        eval_env = _vec_env(lambda _, task=task: family.make_env(task), episodes, task_seed + 1)
        agent = agent_for(train_env, task_seed)
        for step in range(adapt_steps + 1):
            if step > 0:
                agent.learn(episodes * horizon, reset_num_timesteps=False)
            episode_returns, _ = evaluate_policy(
                agent, eval_env, n_eval_episodes=episodes, deterministic=False,
                return_episode_rewards=True,
            )
            returns[step, i] = np.mean(episode_returns)
        train_env.close()
        eval_env.close()
    result = EvaluationResult.from_returns(
        list(returns), family.name, name, split, episodes, seed, time.perf_counter() - began
    )
    return result, setup
