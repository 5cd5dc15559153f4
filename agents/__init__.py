"""Built-in meta-learners; importing this package registers them all."""

from agents import maml  # noqa: F401
from agents import meml  # noqa: F401
from agents import mbml  # noqa: F401
