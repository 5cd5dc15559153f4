"""Built-in task families; importing this package registers them all."""

from envs import bandit, cartpole, catch, maze, navigation2d, tabular_mdp  # noqa: F401
