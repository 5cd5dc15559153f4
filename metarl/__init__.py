"""metarl: meta-reinforcement learning for game agents.

The front door for scripts (loaded on first use)::

    import metarl
    learner = metarl.make("navigation2d", algo="maml", seed=0)
    learner.learn(iterations=100)
    print(learner.evaluate(n_tasks=40).mean_return)

:func:`make`, :func:`load`, :func:`train` and what they return (:class:`MetaLearner`,
:class:`AdaptedAgent`, :class:`EvaluationResult`) live in :mod:`metarl.api`. The package is
layered; each layer imports only the ones before it: :mod:`metarl.config` <
:mod:`metarl.family` (the task-family contract) < :mod:`metarl.registry` < :mod:`metarl.policies`
< :mod:`metarl.rollout` < :mod:`metarl.learn` < :mod:`metarl.run` < :mod:`metarl.api` <
:mod:`metarl.tools` < :mod:`metarl.cli`. The built-in families (``metarl.envs``) and learners
(``metarl.agents``) plug in through the registry; importing metarl loads them and every
installed plugin (so ``gymnasium.make("metarl/...")`` works after ``import metarl``). This
module also exports what a family author needs.
"""

from typing import Any

from metarl.config import ConfigError
from metarl.family.array import ArrayEnv, ArrayFamily, State, TaskArrays
from metarl.family.base import TaskFamily
from metarl.family.checker import check_family
from metarl.family.rng import BatchRNG
from metarl.family.vector import BatchedEnv, SyncBatchedEnv
from metarl.registry import (
    family_names,
    get_family,
    get_learner,
    learner_names,
    load_plugins,
    register_family,
    register_learner,
)

_FRONT_DOOR = ("AdaptedAgent", "EvaluationResult", "MetaLearner", "load", "make", "train")

__all__ = [
    "AdaptedAgent",
    "ArrayEnv",
    "ArrayFamily",
    "BatchRNG",
    "BatchedEnv",
    "ConfigError",
    "EvaluationResult",
    "MetaLearner",
    "State",
    "SyncBatchedEnv",
    "TaskArrays",
    "TaskFamily",
    "check_family",
    "family_names",
    "get_family",
    "get_learner",
    "learner_names",
    "load",
    "load_plugins",
    "make",
    "register_family",
    "register_learner",
    "train",
]


def __getattr__(name: str) -> Any:
    """The front door, imported on first use: it sits above the family contract in the
    layers, so the family modules that import ``metarl`` never import it."""
    if name in _FRONT_DOOR:
        from metarl import api

        return getattr(api, name)
    raise AttributeError(f"module 'metarl' has no attribute {name!r}")


load_plugins()  # the built-in and installed families and learners, so gymnasium.make sees them
