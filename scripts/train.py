"""Meta-train a learner from Python: the same function `metarl train` calls.

    python scripts/train.py --out runs/nav --iterations 100
"""

import argparse

from metarl.config import TrainConfig
from metarl.run.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--family", default="navigation2d")
    parser.add_argument("--algo", default="maml")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--meta-batch-size", type=int, default=20)
    parser.add_argument("--episodes-per-task", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = TrainConfig(
        family=args.family,
        algo=args.algo,
        iterations=args.iterations,
        meta_batch_size=args.meta_batch_size,
        episodes_per_task=args.episodes_per_task,
        seed=args.seed,
        device="cpu",
    )
    learner = train(config, args.out, resume=True)
    print(f"trained {learner.config.algo} on {learner.config.family}; run in {args.out}")


if __name__ == "__main__":
    main()
