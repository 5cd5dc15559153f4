"""How much a trained VariBAD policy owes to its action noise: one trial per held-out task,
blocks of one episode, with the policy's standard deviation scaled (docs/varibad.md).

    python scripts/varibad_noise.py RUN [TASKS]

Rows: the std scaled by 1, 1/2 and 1/4 in every episode, and the std as trained in the
first episode with no noise after it (the mean action on the belief episode 1 formed).
"""

import sys

import numpy as np
import torch

import metarl
from metarl.agents.varibad import VariBAD

run = sys.argv[1]
n_tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
torch.set_num_threads(1)
learner = metarl.load(run).learner
if not isinstance(learner, VariBAD) or learner.discrete:
    sys.exit(f"varibad_noise.py: {run} is not a VariBAD run with continuous actions")
tasks = learner.family.test_tasks(n_tasks, seed=0)
head = learner.policy.head


def noise_scaled(scale: float, first_episode_as_trained: bool):
    """Wrap the learner so its std is times ``scale`` (from each task's second episode on
    if ``first_episode_as_trained``; the trial's last feature flags a new episode)."""
    episode = np.zeros(len(tasks), dtype=int)
    act = type(learner).act

    def scaled_act(observations, memory, generator, deterministic=False):
        episode[:] += observations[:, -1] > 0.5
        scaled = episode >= 1 if first_episode_as_trained else np.ones(len(tasks), bool)
        shift = torch.as_tensor(np.where(scaled, np.log(scale) if scale > 0 else -30.0, 0.0),
                                dtype=torch.float32)[:, None]

        def shifted_head(x):
            mean, log_std = head(x)
            return mean, log_std + shift
        learner.policy.head = shifted_head
        try:
            return act(learner, observations, memory, generator, deterministic)
        finally:
            learner.policy.head = head
    learner.act = scaled_act


rows = [("as trained", 1.0, False), ("half the std", 0.5, False),
        ("a quarter of the std", 0.25, False), ("none after episode 1", 0.0, True)]
for name, scale, after_first in rows:
    noise_scaled(scale, after_first)
    adaptation = learner.adaptation(tasks, adapt_steps=1, episodes=1, seed=0)
    episode_1, episode_2 = (float(block.mean()) for block in adaptation.returns)
    print(f"{name:>22}: episode 1 {episode_1:7.2f}   episode 2 {episode_2:7.2f}")
