"""Built-in task families (installed as ``metarl.envs``); importing this package registers
them all. The MuJoCo locomotion families need the optional extra (``pip install -e
".[mujoco]"``), the Meta-World families ``[metaworld]`` (in an environment of their own: it
pins an older MuJoCo); without them they are listed as unavailable."""

from metarl.envs import (  # noqa: F401
    bandit,
    cartpole,
    catch,
    maze,
    metaworld,
    navigation2d,
    tabular_mdp,
)
from metarl.registry import register_unavailable

try:
    from metarl.envs import locomotion  # noqa: F401
except ModuleNotFoundError as error:
    if error.name != "mujoco":  # only the missing extra itself; any other error shows
        raise
    register_unavailable(("halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal"),
                         "needs MuJoCo: pip install -e '.[mujoco]'")
