#!/usr/bin/env bash
# Regenerate the figures of docs/meml.md: MEML on every family at the learning-test budgets,
# Navigation2D on 200 held-out tasks against MAML, and time / memory against inner steps.
# Runs go to runs/meml/, figures to docs/results/meml/. About 40 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/meml
docs=docs/results/meml
mkdir -p "$docs"

family() {  # family NAME ITERATIONS TASKS EPISODES INNER_LR [FLAGS...]
    local name=$1 iterations=$2 tasks=$3 episodes=$4 lr=$5
    shift 5
    "$metarl" train --family "$name" --algo meml --inner-steps 3 --iterations "$iterations" \
        --meta-batch-size "$tasks" --episodes-per-task "$episodes" --inner-lr "$lr" --seed 0 \
        --out "$runs/$name" --resume "$@"
    "$metarl" evaluate "$runs/$name" --test-tasks 40 --adapt-steps 5 --episodes "$episodes" \
        --json "$docs/$name.json"
}

# The budgets of tests/test_meml.py (BUDGETS).
family navigation2d 20 10 10 0.1
family bandit-5 40 20 20 1.0
family bandit-10 40 20 20 1.0
family tabular-mdp 60 20 20 2.0
family cartpole-tasks 40 20 20 1.0
family maze 60 20 20 1.0
family catch 60 20 20 0.5 --meta-optimizer trpo --implicit-cg-iters 0

# Navigation2D, 100 iterations, 200 held-out tasks, against MAML.
for algo in maml meml; do
    steps=$([ "$algo" = meml ] && echo 3 || echo 1)
    "$metarl" train --family navigation2d --algo "$algo" --inner-steps "$steps" \
        --iterations 100 --seed 0 --out "$runs/nav-$algo" --resume
    "$metarl" evaluate "$runs/nav-$algo" --test-tasks 200 --adapt-steps 5 --episodes 20 \
        --json "$docs/nav-$algo-200.json"
done

# Seconds per meta-iteration and peak memory against inner steps, back to back.
for algo in meml maml; do
    "$metarl" bench --algo "$algo" --inner-steps 1 3 5 --json "$docs/bench-inner-steps-$algo.json"
done
