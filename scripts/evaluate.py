"""Evaluate a trained run on held-out tasks, as `metarl evaluate` does, and save the result.

    python scripts/evaluate.py RUN_DIR [TEST_TASKS]
"""

import json
import sys

import metarl

learner = metarl.load(sys.argv[1])
n_tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 40
result = learner.evaluate(split="test", n_tasks=n_tasks, adapt_steps=3, episodes=20, seed=0)
print(f"{learner.algo} after {learner.iterations} iterations on {n_tasks} held-out tasks:")
for k in result.adapt_steps:
    improved = result.share_improved[k]
    print(f"  {k} steps: {result.mean_return[k]:.2f}" + (
        f", {100 * improved:.0f}% of tasks above their return before" if improved is not None
        else ""))
with open("evaluation.json", "w") as handle:
    json.dump(result.to_json(), handle, indent=2)
