"""metarl: meta-reinforcement learning for game agents."""

from metarl.array_env import ArrayEnv, ArrayFamily
from metarl.family import TaskFamily
from metarl.registry import (
    family_names,
    get_family,
    get_learner,
    learner_names,
    register_family,
    register_learner,
)
from metarl.vector import BatchedEnv, SyncBatchedEnv

__all__ = [
    "ArrayEnv",
    "ArrayFamily",
    "BatchedEnv",
    "SyncBatchedEnv",
    "TaskFamily",
    "family_names",
    "get_family",
    "get_learner",
    "learner_names",
    "register_family",
    "register_learner",
]
