"""metarl: meta-reinforcement learning for game agents.

The package is layered; each layer imports only the ones before it:
:mod:`metarl.config` < :mod:`metarl.family` (the task-family contract) < :mod:`metarl.registry`
< :mod:`metarl.policies` < :mod:`metarl.rollout` < :mod:`metarl.learn` < :mod:`metarl.run`
< :mod:`metarl.tools` < :mod:`metarl.cli`. The built-in families (``metarl.envs``) and
learners (``metarl.agents``) plug in through the registry; importing metarl loads them and
every installed plugin (so ``gymnasium.make("metarl/...")`` works after ``import metarl``).
This module exports what a family author needs.
"""

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

__all__ = [
    "ArrayEnv",
    "ArrayFamily",
    "BatchRNG",
    "BatchedEnv",
    "State",
    "SyncBatchedEnv",
    "TaskArrays",
    "TaskFamily",
    "check_family",
    "family_names",
    "get_family",
    "get_learner",
    "learner_names",
    "load_plugins",
    "register_family",
    "register_learner",
]

load_plugins()  # the built-in and installed families and learners, so gymnasium.make sees them
