"""Built-in task families; importing this package registers them all."""

from envs import cartpole, navigation2d  # noqa: F401
