"""Train MAML on Navigation2D in memory, measure its adaptation, save it and load it again.

    python scripts/quickstart.py [ITERATIONS]
"""

import sys

import metarl

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 100

learner = metarl.make("navigation2d", algo="maml", seed=0, meta_batch_size=20, max_kl=0.01)
history = learner.learn(iterations=iterations)  # one metrics row per iteration
print(f"last iteration: return {history[-1]['return_before']:.2f} before adaptation, "
      f"{history[-1]['return_after']:.2f} after")

result = learner.evaluate(split="test", n_tasks=40, adapt_steps=3, episodes=20, seed=0)
for k in result.adapt_steps:
    print(f"after {k} steps: {result.mean_return[k]:.2f} "
          f"[{result.ci95_low[k]:.2f}, {result.ci95_high[k]:.2f}]")

learner.save("nav.pt")
loaded = metarl.load("nav.pt")
assert loaded.evaluate(n_tasks=40, seed=0).mean_return == result.mean_return
