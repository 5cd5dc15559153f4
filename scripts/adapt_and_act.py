"""Adapt a trained learner to a task it has never seen, then act in that task's env.

    python scripts/adapt_and_act.py [ALGO] [ITERATIONS]      # ALGO: maml (default), rl2, ...
"""

import sys

import metarl

algo = sys.argv[1] if len(sys.argv) > 1 else "maml"
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 100

learner = metarl.make("navigation2d", algo=algo, seed=0)
learner.learn(iterations=iterations)

task = learner.family.test_tasks(1, seed=0)[0]  # a held-out task
agent = learner.adapt(task, episodes=20, steps=1, seed=0)
env = agent.wrap(learner.family.make_env(task))  # tells the agent what each action earned
obs, _ = env.reset(seed=0)
episode_return, done = 0.0, False
while not done:
    action, _ = agent.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, _ = env.step(action)
    episode_return += float(reward)
    done = terminated or truncated
print(f"{algo} on {task}: {episode_return:.2f} in its first episode after adapting "
      f"(adaptation blocks returned {[round(r, 2) for r in agent.adaptation_returns]})")
