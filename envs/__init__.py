"""Built-in task families; importing this package registers them all."""

import importlib.util

from envs import bandit, cartpole, catch, maze, navigation2d, tabular_mdp  # noqa: F401

if importlib.util.find_spec("mujoco") is not None:  # optional: pip install 'metarl[mujoco]'
    from envs import locomotion  # noqa: F401
