"""RL^2 (Duan et al. 2016; Wang et al. 2016): a recurrent policy that adapts in its memory.

A *trial* is several episodes of one task played as one Gymnasium episode by :class:`TrialEnv`.
The policy, an LSTM (sb3-contrib's ``MlpLstmPolicy``: separate actor and critic LSTMs of
``--hidden-size`` units, then ``--hidden-sizes`` layers), sees the observation plus the previous
action, reward and episode-end flag. Its memory runs on across the episodes of a trial and
starts from zero at every trial, so what it learns is how to explore a task and exploit what it
found. Training is sb3-contrib's ``RecurrentPPO`` over trials of tasks drawn from the family: a
training trial lasts ``--trial-episodes`` x horizon steps (that many episodes, more where
episodes end early), and each meta-iteration plays exactly one trial in each of
``--meta-batch-size`` x ``--rollout-trials`` parallel envs (``--rollout-trials`` per task of the
batch), then updates. No trial starts inside an update's rollout, so the update runs every
sequence through the LSTM in one call.

Evaluation lines up with the gradient learners' blocks: on each held-out task one trial of
``(K + 1) * E`` episodes, block ``k`` being episodes ``k*E .. (k+1)*E - 1`` (after ``k*E``
episodes of the task), the same real-episode budget as K adaptation steps of E episodes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from metarl.config import ConfigError, option
from metarl.learn.adaptation import Actor, Adaptation
from metarl.learn.learner import MetaLearner, Rollouts, Timer
from metarl.policies.params import Params
from metarl.registry import register_learner
from metarl.rollout.episodes import EpisodeBatch

if TYPE_CHECKING:  # SB3 and sb3-contrib are imported when an RL^2 learner is built
    from sb3_contrib import RecurrentPPO

    from metarl.agents.trials import ArrayTrials, EnvTrials, TrialEnv

_EVALUATION_STREAM = 0x2E1
"""Seeds of the evaluation trials' envs, apart from every training stream."""
ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU}


@dataclass(frozen=True)
class RL2Options:
    trial_episodes: int = option(10, "length of a training trial in episodes (trial-episodes x "
                                     "horizon steps: more episodes where they end early); the "
                                     "memory runs on across them and is reset between trials",
                                 min=1)
    hidden_size: int = option(128, "LSTM units (actor and critic LSTM each)", min=1)
    rollout_trials: int = option(1, "trials per task in one PPO update, played in parallel "
                                    "envs (environment steps per update: meta-batch-size x "
                                    "rollout-trials x trial-episodes x horizon)", min=1)
    learning_rate: float = option(3e-3, "Adam step size", above=0.0)
    epochs: int = option(4, "PPO epochs over each update's trials", min=1)
    minibatches: int = option(4, "minibatches per epoch (at most --meta-batch-size x "
                                 "--rollout-trials)", min=1)
    clip_range: float = option(0.2, "PPO ratio clip", above=0.0)
    ent_coef: float = option(0.01, "entropy bonus coefficient", min=0.0)
    vf_coef: float = option(0.5, "value loss coefficient", above=0.0)
    max_grad_norm: float = option(0.5, "gradient norm clip", above=0.0)
    ppo_gae_lambda: float = option(0.3, "GAE lambda of the PPO advantages (--gae-lambda is "
                                         "the gradient learners')", min=0.0, max=1.0)
    normalize_reward: bool = option(False, "scale training rewards by a running estimate of the "
                                          "discounted return's spread (SB3 VecNormalize)")


def _timers() -> Any:
    """A callback timing the rollout and the update of one ``learn`` call."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Times(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: dict[str, float] = {}

        def _on_rollout_start(self) -> None:
            self.marks["start"] = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.marks["rollout_end"] = time.perf_counter()

        def _on_step(self) -> bool:
            return True

    return Times()


@register_learner("rl2")
class RL2(MetaLearner):
    """RL^2 with RecurrentPPO over trials (see the module docstring)."""

    Options = RL2Options
    phases = ("sampling", "update")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from sb3_contrib import RecurrentPPO
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import VecEnv, VecNormalize

        from metarl.agents.trials import ActionCodec, training_trials

        config, options = self.config, self.options
        if config.backend != "local":
            raise ConfigError(f"rl2 steps its own envs; --backend {config.backend} does not "
                              "apply (use --backend local)")
        if config.init_output_scale != 1.0:
            raise ConfigError("--init-output-scale does not apply to --algo rl2 (SB3 starts its "
                              "action layer with gain 0.01); leave it at 1")
        n_envs = config.meta_batch_size * options.rollout_trials
        if options.minibatches > n_envs:
            raise ConfigError(f"--minibatches must be <= --meta-batch-size x --rollout-trials "
                              f"(a trial's steps per minibatch at least), got "
                              f"{options.minibatches} > {n_envs}")
        self.horizon = self.family.max_episode_steps
        self.n_steps = options.trial_episodes * self.horizon
        """Steps of one training trial, and of one update's rollout in each env."""
        self.envs: ArrayTrials | EnvTrials = training_trials(self.family, n_envs, self.n_steps)
        self.codec = ActionCodec(self.family.action_space)
        self.training_env: VecEnv = self.envs
        self.normalizer = None
        if options.normalize_reward:
            self.normalizer = VecNormalize(self.envs, norm_obs=False, gamma=config.gamma)
            self.training_env = self.normalizer
        # RecurrentPPO's initial weights come from the run's seed alone, not from what is left
        # of the stream after the feed-forward policy every learner is built with.
        torch.manual_seed(config.seed)
        self.model: RecurrentPPO = RecurrentPPO(
            "MlpLstmPolicy", self.training_env, learning_rate=options.learning_rate,
            n_steps=self.n_steps,
            batch_size=self.n_steps * n_envs // options.minibatches,
            n_epochs=options.epochs, gamma=config.gamma, gae_lambda=options.ppo_gae_lambda,
            clip_range=options.clip_range, ent_coef=options.ent_coef, vf_coef=options.vf_coef,
            max_grad_norm=options.max_grad_norm, device=self.device, seed=None,
            policy_kwargs={
                "lstm_hidden_size": options.hidden_size,
                "net_arch": list(config.hidden_sizes),
                "activation_fn": ACTIVATIONS[config.activation],
                "log_std_init": math.log(config.init_std),
            },
        )
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.policy = self.model.policy  # type: ignore[assignment]

    def trial_env(self, task: Any, episodes: int) -> TrialEnv:
        """Trials of ``episodes`` episodes of ``task`` (the family's env, time limit included)."""
        from metarl.agents.trials import TrialEnv

        env = TrialEnv(self.family.make_env(task), episodes)
        env.set_task(task)
        return env

    # --- the two verbs -----------------------------------------------------------------------
    def adapt(self, params: Params, episodes: EpisodeBatch, create_graph: bool = False) -> Params:
        raise NotImplementedError(
            "rl2 adapts in its recurrent memory, not its parameters: use adaptation() (what "
            "metarl evaluate and watch call)"
        )

    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        """One PPO update on one fresh trial per parallel env: envs ``i * R .. (i + 1) * R - 1``
        play ``tasks[i]`` (R = ``--rollout-trials``)."""
        if len(tasks) != self.config.meta_batch_size:
            raise ConfigError(f"rl2 plays --meta-batch-size {self.config.meta_batch_size} tasks "
                              f"per iteration, got {len(tasks)}")
        model = self.model
        self.envs.set_tasks([task for task in tasks for _ in range(self.options.rollout_trials)])
        self.training_env.seed(int(self.rng.integers(2**31)))
        # Every update starts fresh trials from a zero memory and ends with them. The start is
        # not flagged as an episode start: the memory is zero already, and with no flag in the
        # rollout every sequence takes the LSTM's one-call path in the update.
        model._last_obs = self.training_env.reset()
        model._last_episode_starts = np.zeros(self.envs.num_envs, dtype=bool)
        for states in model._last_lstm_states:
            for state in states:
                state.zero_()
        seed = int(self.rng.integers(2**31))
        timer = _timers()
        steps_before = model.num_timesteps
        numpy_state = np.random.get_state()
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)
            np.random.seed(seed)
            try:
                model.learn(self.n_steps * self.envs.num_envs, callback=timer,
                            log_interval=None, reset_num_timesteps=False)
            finally:
                np.random.set_state(numpy_state)
        done = time.perf_counter()
        steps = model.num_timesteps - steps_before
        self.env_steps += steps
        first, last, trials = self._trial_returns()
        logged = model.logger.name_to_value
        return {
            "return_before": first,
            "return_after": last,
            "trial_return": trials,
            "entropy": -float(logged["train/entropy_loss"]),
            "approx_kl": float(logged["train/approx_kl"]),
            "clip_fraction": float(logged["train/clip_fraction"]),
            "value_loss": float(logged["train/value_loss"]),
            "explained_variance": float(logged["train/explained_variance"]),
            "env_steps": steps,
            "sampling_seconds": timer.marks["rollout_end"] - timer.marks["start"],
            "update_seconds": done - timer.marks["rollout_end"],
        }

    def _trial_returns(self) -> tuple[float, float, float]:
        """Mean return of the first and the last completed episode of the trials finished since
        the last call, and their mean total reward."""
        trials = self.envs.pop_completed()
        return (float(np.mean([trial.returns[0] for trial in trials])),
                float(np.mean([trial.returns[-1] for trial in trials])),
                float(np.mean([trial.total for trial in trials])))

    def _cuda_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    # --- outer-update hooks of the base class, which RL^2 does not use -------------------------
    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        raise NotImplementedError("rl2 updates with RecurrentPPO in step()")

    # --- measuring adaptation -----------------------------------------------------------------
    def adaptation(
        self, tasks: Sequence[Any], adapt_steps: int, episodes: int, seed: int
    ) -> RL2Adaptation:
        """One trial of ``(adapt_steps + 1) * episodes`` episodes on each task, all at once;
        block ``k`` is episodes ``k*episodes .. (k+1)*episodes - 1``. Also keeps, per task, the
        memory at the start of each block (what :meth:`RL2Adaptation.actor` plays from)."""
        blocks = adapt_steps + 1
        length = blocks * episodes
        n = len(tasks)
        envs = [self.trial_env(task, length) for task in tasks]
        seeds = np.random.SeedSequence([seed, _EVALUATION_STREAM]).generate_state(n)
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)])
        state = self.zero_memory(n)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        memories = [[t.clone() for t in state] for _ in range(blocks)]
        width = self.codec.width + 2  # previous action, reward and flag
        tails = np.zeros((blocks, n, width), np.float32)
        tails[0] = obs[:, -width:]
        returns = np.zeros((n, length))
        alive = np.ones(n, dtype=bool)
        progress = tqdm(total=length * self.horizon, desc=f"rl2 trials on {n} tasks",
                        unit="step", leave=False, disable=None)
        while alive.any():
            actions, state = self.act(obs, state, generator)
            for i in np.flatnonzero(alive):
                obs[i], _, _, trial_over, info = envs[i].step(actions[i])
                if "trial_episode" in info:
                    played = info["trial_episode"] + 1
                    returns[i, played - 1] = info["episode_return"]
                    if played < length and played % episodes == 0:
                        block = played // episodes
                        for kept, now in zip(memories[block], state, strict=True):
                            kept[:, i] = now[:, i]
                        tails[block, i] = obs[i, -width:]
                alive[i] = not trial_over
            progress.update(1)
        progress.close()
        for env in envs:
            env.close()
        per_block = list(returns.reshape(n, blocks, episodes).mean(axis=2).T)
        return RL2Adaptation(per_block, self, memories, tails)

    def zero_memory(self, n: int) -> tuple[Tensor, Tensor]:
        """The actor LSTM's (hidden, cell) state at a trial's start, for ``n`` columns."""
        lstm = self.model.policy.lstm_actor
        shape = (lstm.num_layers, n, lstm.hidden_size)
        return (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: tuple[Tensor, Tensor], generator: torch.Generator,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[Tensor, Tensor]]:
        """The policy's actions (in its own action space) for trial observations ``obs``
        ``[n, ...]`` and the next memory; noise from ``generator``."""
        policy = self.model.policy
        policy.set_training_mode(False)
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        starts = torch.zeros(len(obs), device=self.device)
        dist, state = policy.get_distribution(obs_t, state, starts)
        inner = dist.distribution
        if deterministic:
            action = dist.mode()
        elif isinstance(inner, torch.distributions.Categorical):
            action = torch.multinomial(inner.probs, 1, generator=generator).squeeze(-1)
        else:
            noise = torch.randn(inner.mean.shape, generator=generator, device=self.device)
            action = inner.mean + inner.stddev * noise
        actions = action.cpu().numpy()
        if isinstance(self.codec.space, gym.spaces.Box):
            actions = np.clip(actions, self.codec.space.low, self.codec.space.high)
        return actions, state

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.model.policy.state_dict(),
            "optimizer": self.model.policy.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "env_steps": self.env_steps,
            "num_timesteps": self.model.num_timesteps,
            "updates": self.model._n_updates,
        }
        if self.normalizer is not None:
            stats = self.normalizer.ret_rms
            state["reward_scale"] = [float(stats.mean), float(stats.var), float(stats.count)]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.env_steps = int(state["env_steps"])
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["updates"])
        if self.normalizer is not None:
            stats = self.normalizer.ret_rms
            stats.mean, stats.var, stats.count = (np.float64(v) for v in state["reward_scale"])


@dataclass
class RL2Adaptation(Adaptation):
    """RL^2's trials: ``memories[k]`` is the actor LSTM's (hidden, cell) state, ``[layers,
    tasks, units]``, at the start of block ``k``; ``tails[k]`` the previous action, reward and
    flag features there, ``[tasks, width]``."""

    learner: RL2
    memories: list[list[Tensor]]
    tails: np.ndarray

    def actor(self, task: int) -> RecurrentActor:
        memory = tuple(torch.stack([m[j][:, task] for m in self.memories], dim=1)
                       for j in range(2))
        return RecurrentActor(self.learner, memory, self.tails[:, task])


class RecurrentActor(Actor):
    """Column ``k`` plays from the memory RL^2 had after ``k`` blocks of its trial, restored at
    every episode start, on the family's own env (observations extended here as
    :class:`TrialEnv` extends them)."""

    def __init__(self, learner: RL2, memory: tuple[Tensor, ...], tails: np.ndarray) -> None:
        self.learner = learner
        self.start_memory = memory
        self.start_tails = tails
        self.n_columns = len(tails)
        self.observation_space = learner.family.observation_space
        self.generator = torch.Generator(device=learner.device)
        self.reset(0)

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.memory = tuple(t.clone() for t in self.start_memory)
        self.tails = self.start_tails.copy()
        self.actions = np.zeros((self.n_columns, *self.learner.codec.space.shape))

    def start_episode(self, column: int) -> None:
        for now, start in zip(self.memory, self.start_memory, strict=True):
            now[:, column] = start[:, column]
        self.tails[column] = self.start_tails[column]

    def act(self, observations: np.ndarray, deterministic: bool = False) -> np.ndarray:
        from metarl.agents.trials import flatten_batch

        obs = np.concatenate([flatten_batch(self.observation_space, observations), self.tails],
                             axis=1)
        self.actions, self.memory = self.learner.act(obs, self.memory, self.generator,
                                                     deterministic)
        return self.learner.codec.to_env(self.actions)

    def feedback(self, column: int, reward: float, done: bool) -> None:
        features = self.learner.codec.features(self.actions[column])
        self.tails[column] = np.concatenate([features, np.float32([reward, float(done)])])
