"""Evaluate a trained run on held-out tasks from Python: what `metarl evaluate` does.

    python scripts/evaluate.py runs/nav --test-tasks 40 --adapt-steps 3
"""

import argparse
from pathlib import Path

import torch

from metarl.run.checkpoint import load_learner
from metarl.run.evaluation import evaluate, format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--test-tasks", type=int, default=40)
    parser.add_argument("--adapt-steps", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    learner, iterations = load_learner(args.run_dir, torch.device("cpu"))
    tasks = learner.family.test_tasks(args.test_tasks, seed=0, split=args.split)
    result = evaluate(learner, tasks, args.adapt_steps, args.episodes, split=args.split)
    print(f"after {iterations} meta-iterations:")
    print(format_table(result))


if __name__ == "__main__":
    main()
