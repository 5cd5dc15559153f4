"""The oracle's return (a policy that knows the task) on every family that has one.

    python scripts/oracle_returns.py                      # 200 held-out tasks x 20 episodes
    python scripts/oracle_returns.py --families maze,catch --tasks 40

Prints a Markdown table: per family and split, the mean return with a 95% Student-t interval
across tasks.
"""

import argparse
import time

import metarl.envs  # noqa: F401  (registers the families)
from metarl.family.oracle import has_oracle, oracle_returns
from metarl.registry import family_names, get_family
from metarl.run.evaluation import confidence_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="all",
                        help="comma-separated names, or 'all' (every family with an oracle)")
    parser.add_argument("--tasks", type=int, default=200, help="held-out tasks per split")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the envs")
    args = parser.parse_args()
    names = family_names() if args.families == "all" else args.families.split(",")
    print(f"oracle return, {args.tasks} held-out tasks x {args.episodes} episodes, "
          f"seed {args.seed}\n")
    print("| family | split | mean return [95% interval] | seconds |")
    print("|---|---|---:|---:|")
    for name in names:
        family = get_family(name)
        if not has_oracle(family):
            if args.families != "all":
                print(f"| {name} | | no oracle | |")
            continue
        for split in family.splits:
            start = time.perf_counter()
            tasks = family.test_tasks(args.tasks, seed=args.seed, split=split)
            returns = oracle_returns(family, tasks, args.episodes, args.seed)
            seconds = time.perf_counter() - start
            low, high = confidence_interval(returns)
            print(f"| {name} | {split} | {returns.mean():.2f} [{low:.2f}, {high:.2f}] | "
                  f"{seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
