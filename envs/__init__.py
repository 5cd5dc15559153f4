"""Built-in task families; importing this package registers them all."""

from envs import navigation2d  # noqa: F401
