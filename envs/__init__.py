"""Built-in task families (installed as ``metarl.envs``); importing this package registers
them all."""

from metarl.envs import (  # noqa: F401
    bandit,
    cartpole,
    catch,
    maze,
    navigation2d,
    tabular_mdp,
)
