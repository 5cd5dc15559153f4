"""Built-in learners (installed as ``metarl.agents``); importing this package registers them
all: the gradient meta-learners, the learners that adapt in memory, and the baselines."""

from metarl.agents import (
    baselines,  # noqa: F401
    maml,  # noqa: F401
    mbml,  # noqa: F401
    meml,  # noqa: F401
    rl2,  # noqa: F401
    varibad,  # noqa: F401
)
