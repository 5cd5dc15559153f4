#!/usr/bin/env bash
# The RL^2 results of docs/rl2.md that are not in `make results` (scripts/results.sh holds the
# compare tables with RL^2): RL^2 on its own, and the tabular-mdp designs measured on 200
# held-out tasks in short blocks of episodes.
# Runs go to runs/rl2-results/ (resumed if interrupted); JSON to docs/results/rl2/.
set -euo pipefail
cd "$(dirname "$0")/.."
metarl=${METARL:-.venv/bin/metarl}
runs=runs/rl2-results
docs=docs/results/rl2
mkdir -p "$docs"

train() {  # train NAME ARGS...: one resumable run directory under $runs
    local name=$1
    shift
    "$metarl" train --seed 0 --out "$runs/$name" --resume "$@"
}

blocks() {  # blocks RUN NAME: 200 held-out tasks in blocks of 2 and of 1 episode
    for steps_episodes in "4 2" "9 1"; do
        set -- "$1" "$2" $steps_episodes
        "$metarl" evaluate "$runs/$1" --test-tasks 200 --adapt-steps "$3" --episodes "$4" \
            --json "$docs/$2-blocks-of-$4.json"
    done
}

# RL^2 on its own, 40 held-out tasks in blocks of 20 episodes.
train bandit-10-rl2 --family bandit-10 --algo rl2 --iterations 250
train tabular-mdp-rl2 --family tabular-mdp --algo rl2 --iterations 120
for family in bandit-10 tabular-mdp; do
    "$metarl" evaluate "$runs/$family-rl2" --test-tasks 40 --adapt-steps 3 --episodes 20 \
        --json "$docs/$family-rl2.json"
done
"$metarl" evaluate "$runs/bandit-10-rl2" --test-tasks 200 --adapt-steps 4 --episodes 2 \
    --json "$docs/bandit-10-rl2-200-tasks-blocks-of-2.json"

# tabular-mdp: gamma 0.9 on 20 trials per update (400 updates), and on 80 (4 per task, 300).
train tabular-mdp-rl2-gamma0.9 --family tabular-mdp --algo rl2 --gamma 0.9 --iterations 400
blocks tabular-mdp-rl2-gamma0.9 tabular-mdp-rl2-gamma0.9
train tabular-mdp-rl2-rollout-trials-4 --family tabular-mdp --algo rl2 --gamma 0.9 \
    --rollout-trials 4 --iterations 300
blocks tabular-mdp-rl2-rollout-trials-4 tabular-mdp-rl2-rollout-trials-4
