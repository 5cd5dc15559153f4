"""Built-in meta-learners; importing this package registers them all."""

from agents import maml  # noqa: F401
