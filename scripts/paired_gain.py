"""The paired gain of one evaluation over another on the same held-out tasks, from their JSON
files: the last block of RESULT against the first block of BASE, task by task, in return and
(where both have it) success rate, with 95% Student-t intervals and the shares of tasks that
did better and worse. Used for a learner's prior (`scripts/evaluate_prior.py --json`) against
its Meta-World protocol evaluation (`metarl evaluate ... --protocol metaworld --json`).

    python scripts/paired_gain.py BASE_JSON RESULT_JSON
"""

import argparse
import json
from typing import Any

import numpy as np

from metarl.run.evaluation import confidence_interval

SAME = ("family", "split", "test_tasks", "seed")
"""What both evaluations must share for their tasks to be the same."""


def paired_rows(base: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """One line per metric: the mean paired gain [95% interval] and the shares better/worse."""
    metrics = [("return", "task_returns", 1.0)]
    if "task_successes" in base and "task_successes" in result:
        metrics.append(("success (points)", "task_successes", 100.0))
    rows = []
    for name, key, scale in metrics:
        gains = scale * (np.asarray(result[key][-1]) - np.asarray(base[key][0]))
        low, high = confidence_interval(gains)
        rows.append(f"{name}: {gains.mean():+.1f} [{low:+.1f}, {high:+.1f}], "
                    f"{np.mean(gains > 0):.0%} of tasks better, {np.mean(gains < 0):.0%} worse")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="evaluation JSON whose first block is the baseline")
    parser.add_argument("result", help="evaluation JSON whose last block is compared with it")
    args = parser.parse_args()
    with open(args.base) as handle:
        base = json.load(handle)
    with open(args.result) as handle:
        result = json.load(handle)
    for field in SAME:
        if base.get(field) != result.get(field):
            parser.error(f"the two evaluations differ in {field} ({base.get(field)!r} against "
                         f"{result.get(field)!r}); evaluate both on the same held-out tasks")
    print(f"{result['algo']} on {result['family']}, {result['test_tasks']} tasks: the last block "
          f"of {args.result} over the first of {args.base}, paired over tasks")
    print("\n".join(paired_rows(base, result)))


if __name__ == "__main__":
    main()
