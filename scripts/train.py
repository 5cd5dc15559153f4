"""Train into a run directory as `metarl train` does (config, metrics log, a checkpoint after
every iteration; run it again to resume), stopping early once adaptation pays off.

    python scripts/train.py OUT_DIR [ITERATIONS]
"""

import sys

import metarl

out = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def report(learner: metarl.MetaLearner, row: dict) -> bool:
    """Called after every iteration; returning False stops training."""
    gain = row["return_after"] - row["return_before"]
    print(f"iteration {row['iteration']:.0f}: adaptation gains {gain:.1f}")
    return row["return_after"] < -20  # stop once the adapted return passes -20


learner = metarl.make("navigation2d", algo="meml", seed=0, inner_steps=3)
learner.learn(iterations=iterations, callback=report, progress=False)

run = metarl.train("navigation2d", algo="maml", out=out, iterations=iterations, resume=True)
print(f"{run.algo}: {run.iterations} iterations in {out}; return after one step on 40 "
      f"held-out tasks: {run.evaluate(adapt_steps=1).mean_return[1]:.2f}")
