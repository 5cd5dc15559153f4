"""A learner that adapts in memory (RL², VariBAD) with its prior alone, beside the same
learner adapting: on held-out tasks, the first EPISODES episodes of a trial played with every
step as at the trial's start (memory reset; previous action, reward and flag zeroed, so no
evidence of the task reaches the agent: `metarl.learn.memory.PriorPolicy`), and the same
episodes played as usual, with the same env seeds.

    python scripts/evaluate_prior.py RUN_DIR [--test-tasks 50] [--episodes 1] [--json OUT]

Prints a table whose step 0 is the prior and step 1 the trial as played; the paired gain and
the share of tasks improved compare the two. Where a learner adapts within its first episode,
its first episode's return is already adapted; the prior is its "before adapting".
"""

import argparse
import json
import time

import metarl
from metarl.family.base import held_out_tasks
from metarl.learn.memory import PriorPolicy, TrialPolicy, trial_adaptation
from metarl.run.evaluation import EvaluationResult, format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run directory or checkpoint of an RL² or VariBAD learner")
    parser.add_argument("--test-tasks", type=int, default=50, help="held-out tasks")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per task")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the envs")
    parser.add_argument("--json", help="write the result here as JSON")
    args = parser.parse_args()
    loaded = metarl.load(args.run)
    learner = loaded.learner
    if not isinstance(learner, TrialPolicy):
        parser.error(f"{loaded.algo} adapts by gradient steps, not in memory; its step 0 in "
                     "`metarl evaluate` is already its prior")
    tasks = held_out_tasks(loaded.family, args.test_tasks, args.seed)
    began = time.perf_counter()
    blocks = [trial_adaptation(policy, loaded.family, tasks, 0, args.episodes, args.seed)
              for policy in (PriorPolicy(learner), learner)]
    result = EvaluationResult.from_returns(
        [block.returns[0] for block in blocks], loaded.config.family, loaded.algo, "test",
        args.episodes, args.seed, time.perf_counter() - began,
        None if blocks[0].successes is None else [block.successes[0] for block in blocks])
    print("step 0: the prior (every step as at a trial's start); step 1: the trial as played")
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.to_json(), handle, indent=2)


if __name__ == "__main__":
    main()
