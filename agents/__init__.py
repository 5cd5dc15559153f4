"""Built-in meta-learners; importing this package registers them all."""

from agents import (
    maml,  # noqa: F401
    mbml,  # noqa: F401
    meml,  # noqa: F401
)
