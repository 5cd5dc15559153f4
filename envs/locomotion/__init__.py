"""The MAML paper's locomotion families on MuJoCo: halfcheetah-vel, halfcheetah-dir, ant-dir
and ant-goal.

Each runs Gymnasium's v5 model (``HalfCheetah-v5``, ``Ant-v5``) with the task in the reward.
MuJoCo is an optional dependency: without it, importing this package raises
``ModuleNotFoundError`` for ``mujoco``, and :mod:`metarl.envs` lists the four families as
unavailable with the install command.
"""

import mujoco  # noqa: F401  (the optional dependency: fail here, by name, without it)

from metarl.envs.locomotion.ant import AntDir, AntGoal, GoalTask
from metarl.envs.locomotion.base import DirectionTask
from metarl.envs.locomotion.half_cheetah import HalfCheetahDir, HalfCheetahVel, VelocityTask
from metarl.registry import register_family

FAMILIES = (HalfCheetahVel, HalfCheetahDir, AntDir, AntGoal)

for _family in FAMILIES:
    register_family(_family.name, _family)

__all__ = [
    "AntDir", "AntGoal", "DirectionTask", "FAMILIES", "GoalTask", "HalfCheetahDir",
    "HalfCheetahVel", "VelocityTask",
]
