"""Built-in task families (installed as ``metarl.envs``); importing this package registers
them all. The MuJoCo locomotion families need the optional extra (``pip install -e
".[mujoco]"``); without it they are listed as unavailable."""

import importlib.util

from metarl.envs import (  # noqa: F401
    bandit,
    cartpole,
    catch,
    maze,
    navigation2d,
    tabular_mdp,
)

if importlib.util.find_spec("mujoco") is not None:
    from metarl.envs import locomotion  # noqa: F401
