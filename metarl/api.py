"""The Python front door: ``metarl.make``, ``load`` and ``train``, and what they return.

::

    import metarl
    learner = metarl.make("navigation2d", algo="maml", seed=0, meta_batch_size=20)
    learner.learn(iterations=100)                     # in memory, progress shown
    result = learner.evaluate(split="test", n_tasks=40, adapt_steps=3, episodes=20)
    agent = learner.adapt(task, episodes=20, steps=1)  # adapted to one task
    action, _ = agent.predict(obs, deterministic=True)
    learner.save("nav.pt"); learner = metarl.load("nav.pt")
    metarl.train("navigation2d", algo="maml", out="runs/nav", iterations=100)  # a run directory

Settings are resolved as the command line resolves them (:mod:`metarl.run.settings`), and the
functions apply the command line's process defaults (torch's CPU threads, one by default), so
the same seed gives the same metrics from a script and from ``metarl train``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.config import ConfigError, EvaluationConfig, TrainConfig, from_dict
from metarl.family.base import TaskFamily, held_out_tasks
from metarl.learn.adaptation import Actor
from metarl.learn.learner import Learner
from metarl.process import set_threads
from metarl.run.checkpoint import learner_from_state, read_checkpoint, save_checkpoint
from metarl.run.directory import RunDirectory
from metarl.run.evaluation import EvaluationResult, evaluate
from metarl.run.factory import build_learner, resolve_device
from metarl.run.rundir import check_output_file
from metarl.run.settings import flat_settings, resolve_settings
from metarl.run.training import Row, run_iterations
from metarl.run.training import train as train_run

Callback = Callable[["MetaLearner", Row], "bool | None"]
"""Called after every training iteration with the learner and the iteration's metrics row;
returning False stops training (as stable-baselines3's callbacks do)."""


class MetaLearner:
    """A learner and its training state: what :func:`make`, :func:`load` and :func:`train`
    return.

    ``learner`` is the learner itself (the protocol of :mod:`metarl.learn.learner`);
    ``iterations`` the training iterations done so far; ``history`` their metrics rows (for a
    loaded run directory, its ``metrics.csv``).
    """

    def __init__(self, learner: Learner, iterations: int = 0,
                 history: Sequence[Row] | None = None) -> None:
        self.learner = learner
        self.iterations = iterations
        self.history: list[Row] = list(history or [])

    def __repr__(self) -> str:
        return (f"<MetaLearner {self.algo} on {self.family.name}, {self.iterations} "
                f"iterations, {self.device}>")

    @property
    def family(self) -> TaskFamily:
        return self.learner.family

    @property
    def algo(self) -> str:
        return self.learner.config.algo

    @property
    def device(self) -> torch.device:
        return self.learner.device

    @property
    def config(self) -> TrainConfig:
        """Every resolved setting (:attr:`settings` has them by plain name)."""
        return self.learner.config

    @property
    def settings(self) -> dict[str, Any]:
        """Every setting by its plain name: the training settings, then the learner's options."""
        return flat_settings(self.config)

    def learn(self, iterations: int | None = None, callback: Callback | None = None,
              progress: bool = True) -> list[Row]:
        """Train ``iterations`` more iterations in memory (default: up to the ``iterations``
        setting); returns their metrics rows (also appended to :attr:`history`). Progress
        is printed unless ``progress`` is False; ``callback`` (see :data:`Callback`) may stop
        training early."""
        if iterations is None:
            iterations = max(0, self.config.iterations - self.iterations)
        _check_count("iterations", iterations, least=0)
        if iterations and not self.learner.trainable:
            raise ConfigError(f"{self.algo} has nothing to learn before the test tasks; "
                              "evaluate or adapt it directly")
        rows: list[Row] = []

        def record(row: Row) -> bool | None:
            rows.append(row)
            self.history.append(row)
            self.iterations = int(row["iteration"])
            return callback(self, row) if callback is not None else None

        run_iterations(self.learner, self.iterations, self.iterations + iterations, record,
                       sys.stdout if progress else None)
        return rows

    def evaluate(self, split: str = "test", n_tasks: int = 40, adapt_steps: int = 3,
                 episodes: int = 20, seed: int = 0, protocol: str = "blocks",
                 eval_episodes: int = 3) -> EvaluationResult:
        """Adaptation on ``n_tasks`` held-out tasks of ``split`` (drawn with ``seed``), as
        ``metarl evaluate`` measures it: ``adapt_steps + 1`` blocks of ``episodes`` episodes,
        or with ``protocol="metaworld"`` ``adapt_steps`` blocks of ``episodes`` adaptation
        episodes and then ``eval_episodes`` evaluation episodes."""
        settings = from_dict(EvaluationConfig, {"split": split, "test_tasks": n_tasks,
                                                "adapt_steps": adapt_steps,
                                                "episodes": episodes, "seed": seed,
                                                "protocol": protocol,
                                                "eval_episodes": eval_episodes},
                             what="evaluation setting")
        tasks = held_out_tasks(self.family, settings.test_tasks, settings.seed, settings.split)
        return evaluate(self.learner, tasks, settings.adapt_steps, settings.block_episodes,
                        settings.seed, settings.split)

    def adapt(self, task: Any, episodes: int = 20, steps: int = 1, seed: int = 0
              ) -> AdaptedAgent:
        """The learner adapted to ``task`` (a task or its JSON dict) from ``steps`` blocks of
        ``episodes`` episodes, as evaluation adapts: gradient learners take ``steps`` inner
        steps, learners that adapt in memory play ``steps * episodes`` episodes of a trial."""
        task = self.family.coerce_task(task)
        settings = from_dict(EvaluationConfig, {"adapt_steps": steps, "episodes": episodes,
                                                "seed": seed}, what="adaptation setting")
        adaptation = self.learner.adaptation([task], settings.adapt_steps, settings.episodes,
                                             settings.seed)
        actor = adaptation.actor(0, blocks=[settings.adapt_steps])
        actor.reset(settings.seed)
        returns = [float(block[0]) for block in adaptation.returns]
        return AdaptedAgent(actor, self.family, task, returns)

    def save(self, path: str | Path) -> Path:
        """Write the learner (weights, settings, iterations) to the checkpoint file ``path``;
        :func:`load` reads it back."""
        target = Path(path)
        check_output_file(target, "save path")
        self.learner.config = from_dict(TrainConfig, {**self.config.to_json(),
                                                      "iterations": self.iterations})
        save_checkpoint(target, self.learner, self.iterations)
        return target


class AdaptedAgent:
    """A learner adapted to one task, acting in that task's env in stable-baselines3's style.

    ``predict`` gives the action for an observation. A learner that adapts in memory (RL^2,
    VariBAD) also needs what each action earned: call :meth:`observe` after every
    ``env.step``, or step the env :meth:`wrap` returns, which calls it for you; its memory
    runs on across episodes, as in a trial.
    """

    def __init__(self, actor: Actor, family: TaskFamily, task: Any,
                 returns: list[float]) -> None:
        self.actor = actor
        self.family = family
        self.task = task
        self.adaptation_returns = returns
        """The mean return of each block of episodes it adapted on."""
        self._awaiting_feedback = False

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """``(action, None)`` for one observation of the task's env: sampled from the adapted
        policy, or its mode with ``deterministic``. (``state`` and ``episode_start`` are
        accepted for stable-baselines3's signature; the agent keeps its own memory.)"""
        if self._awaiting_feedback:
            raise RuntimeError("this agent adapts in memory and needs what its last action "
                               "earned: call agent.observe(reward, terminated, truncated) "
                               "after each env.step, or step agent.wrap(env)")
        self._awaiting_feedback = self.actor.remembers
        obs = np.asarray(observation)[None]
        return self.actor.act(obs, deterministic)[0], None

    def observe(self, reward: float, terminated: bool, truncated: bool) -> None:
        """What the last action earned, and whether its episode ended."""
        self.actor.feedback(0, float(reward), bool(terminated or truncated))
        self._awaiting_feedback = False

    def wrap(self, env: gym.Env) -> gym.Env:
        """``env`` with every step's reward and end reported to :meth:`observe`."""
        return _Observed(env, self)


class _Observed(gym.Wrapper):
    def __init__(self, env: gym.Env, agent: AdaptedAgent) -> None:
        super().__init__(env)
        self.agent = agent

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.agent.observe(float(reward), terminated, truncated)
        return obs, reward, terminated, truncated, info


def make(family: str, algo: str = "maml", seed: int = 0, *, threads: int = 1,
         **settings: Any) -> MetaLearner:
    """A new, untrained learner: ``algo`` on the registered ``family``, seeded by ``seed``.

    ``settings`` take any training setting (``meta_batch_size``, ``inner_lr``, ``device``,
    ``iterations``, ...) and the learner's own options (``max_kl``, ...) by name; an unknown
    name is a :class:`~metarl.config.ConfigError` listing the valid ones. ``threads`` sets
    torch's CPU threads for the process, as ``metarl --threads`` does (default 1).
    """
    _apply_threads(threads)
    config = resolve_settings({"family": family, "algo": algo, "seed": seed, **settings})
    return MetaLearner(build_learner(config))


def load(path: str | Path, device: str = "auto", *, threads: int = 1) -> MetaLearner:
    """The learner saved at ``path``: a checkpoint file (:meth:`MetaLearner.save`) or a run
    directory (``metarl train``, :func:`train`), on ``device``."""
    _apply_threads(threads)
    where = Path(path)
    target = resolve_device(from_dict(TrainConfig, {"device": device}).device)
    if where.is_dir():
        run = RunDirectory(where)
        learner = run.load(target)
        history = [row for row in run.metrics() if row["iteration"] <= run.iteration]
        return MetaLearner(learner, run.iteration, history)
    state = read_checkpoint(where)
    return MetaLearner(learner_from_state(state, target, str(where)), int(state["iteration"]))


def train(family: str, algo: str = "maml", *, out: str | Path, iterations: int = 100,
          seed: int = 0, resume: bool = False, tensorboard: bool = False,
          progress: bool = True, threads: int = 1, **settings: Any) -> MetaLearner:
    """Train into the run directory ``out`` as ``metarl train`` does (config, metrics log,
    checkpoint after every iteration, lock; ``resume`` continues a run there). Settings as
    :func:`make`'s."""
    _apply_threads(threads)
    config = resolve_settings({"family": family, "algo": algo, "seed": seed,
                               "iterations": iterations, **settings})
    train_run(config, out, resume=resume, log="stdout" if progress else None,
              tensorboard=tensorboard)
    return load(out, config.device, threads=threads)


def _apply_threads(threads: int) -> None:
    _check_count("threads", threads, least=1)
    set_threads(threads)


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, np.integer):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < least \
            or not math.isfinite(value):
        raise ConfigError(f"{name} must be a whole number >= {least}, got {value!r}")
