"""Built-in meta-learners (installed as ``metarl.agents``); importing this package registers
them all."""

from metarl.agents import (
    maml,  # noqa: F401
    mbml,  # noqa: F401
    meml,  # noqa: F401
    rl2,  # noqa: F401
)
